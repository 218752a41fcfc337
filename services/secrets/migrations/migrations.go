// Package migrations embeds the numbered migrations of the secrets schema.
package migrations

import (
	"embed"

	"github.com/algapsa/alga-google/services/platform/pg"
)

// Schema is the Postgres schema the secrets service owns.
const Schema = "secrets"

//go:embed *.sql
var files embed.FS

// Migrations returns the migrations of the secrets schema.
func Migrations() *pg.Migrations {
	return &pg.Migrations{Schema: Schema, FS: files, Dir: "."}
}
