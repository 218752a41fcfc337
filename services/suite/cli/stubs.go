package cli

import (
	"context"
	"errors"
	"io"
)

func sandboxCmd(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("sandbox is not wired yet")
}
