// Command alga-google runs any set of the suite's targets and its operational commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/algapsa/alga-google/services/suite/cli"
)

// version is the build's version, stamped at link time: go build -ldflags "-X main.version=$(git
// describe --always --dirty)" (make build, deploy/Dockerfile). An unstamped build says "dev".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("alga-google", version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "alga-google:", err)
		os.Exit(1)
	}
}
