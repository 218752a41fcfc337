package testenv

import (
	"flag"
	"io"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

func flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }
