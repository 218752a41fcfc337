// Command googlesandbox runs the Google sandbox standalone (the suite binary offers the same as
// `alga-google sandbox`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := googlesandbox.Main(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "googlesandbox:", err)
		os.Exit(1)
	}
}
