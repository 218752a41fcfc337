// Package logging builds the suite's slog logger: JSON by default, text lines in --dev. Request-scoped attributes (request id, tenant,
// service, method) are put in the context once and added to every record logged with that context.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// New returns a JSON logger writing to w at level ("debug", "info", "warn", "error"): what log
// pipelines ingest, the default everywhere but --dev.
func New(w io.Writer, level string) *slog.Logger {
	return slog.New(contextHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: parseLevel(level)})})
}

// NewText returns a logger of key=value lines for a person at a terminal (--dev).
func NewText(w io.Writer, level string) *slog.Logger {
	return slog.New(contextHandler{slog.NewTextHandler(w, &slog.HandlerOptions{Level: parseLevel(level)})})
}

func parseLevel(level string) slog.Level {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	return lv
}

// Discard is a logger that drops everything (tests that do not inspect logs).
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

type attrsKey struct{}

// With returns a context whose log records carry attrs in addition to any already there.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev, _ := ctx.Value(attrsKey{}).([]slog.Attr)
	merged := make([]slog.Attr, 0, len(prev)+len(attrs))
	merged = append(merged, prev...)
	merged = append(merged, attrs...)
	return context.WithValue(ctx, attrsKey{}, merged)
}

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(attrsKey{}).([]slog.Attr); ok {
		r.AddAttrs(attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
