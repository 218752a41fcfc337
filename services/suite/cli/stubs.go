package cli

import (
	"context"
	"errors"
	"io"
)

func secretsCmd(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("secrets commands are not wired yet")
}

func sandboxCmd(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("sandbox is not wired yet")
}
