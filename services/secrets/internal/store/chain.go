package store

import (
	"context"
	"fmt"
)

// Chain is the composite read chain (ALGA_SECRETS_BACKEND=postgres,filesystem): reads try each backend
// in order and the first that holds a name wins; writes go to the first backend. Deletes go to every
// backend, so a deleted secret does not reappear from a later one (the delete in the first backend is
// transactional; the others follow it).
type Chain struct{ backends []Backend }

// NewChain returns a chain over backends (at least one). A chain of one is just that backend.
func NewChain(backends ...Backend) Backend {
	if len(backends) == 1 {
		return backends[0]
	}
	return &Chain{backends: backends}
}

// Name implements Backend.
func (c *Chain) Name() string {
	n := ""
	for i, b := range c.backends {
		if i > 0 {
			n += ","
		}
		n += b.Name()
	}
	return n
}

// Put implements Backend: writes and deletes in the first backend, then the deletes in the others.
func (c *Chain) Put(ctx context.Context, tenant string, actor Actor, writes []Write, deletes []string) ([]Description, error) {
	out, err := c.backends[0].Put(ctx, tenant, actor, writes, deletes)
	if err != nil {
		return nil, err
	}
	if len(deletes) > 0 {
		for _, b := range c.backends[1:] {
			if _, err := b.Delete(ctx, tenant, actor, deletes); err != nil {
				return nil, fmt.Errorf("deleting from the %s backend: %w", b.Name(), err)
			}
		}
	}
	return out, nil
}

// Describe implements Backend.
func (c *Chain) Describe(ctx context.Context, tenant string, names []string) ([]Description, error) {
	found := map[string]Description{}
	for _, b := range c.backends {
		ask := names
		if names != nil {
			ask = missing(names, found)
			if len(ask) == 0 {
				break
			}
		}
		ds, err := b.Describe(ctx, tenant, ask)
		if err != nil {
			return nil, fmt.Errorf("%s backend: %w", b.Name(), err)
		}
		for _, d := range ds {
			if _, ok := found[d.Name]; d.Present && !ok {
				found[d.Name] = d
			}
		}
	}
	return orderDescriptions(names, found), nil
}

// Get implements Backend.
func (c *Chain) Get(ctx context.Context, tenant string, actor Actor, names []string) ([]Value, error) {
	found := map[string]Description{}
	var out []Value
	for _, b := range c.backends {
		ask := missing(names, found)
		if len(ask) == 0 {
			break
		}
		vs, err := b.Get(ctx, tenant, actor, ask)
		if err != nil {
			return nil, fmt.Errorf("%s backend: %w", b.Name(), err)
		}
		for _, v := range vs {
			found[v.Name] = Description{}
			out = append(out, v)
		}
	}
	return orderValues(names, out), nil
}

// Delete implements Backend: every backend, so nothing is left to shine through.
func (c *Chain) Delete(ctx context.Context, tenant string, actor Actor, names []string) ([]string, error) {
	deleted := map[string]bool{}
	for _, b := range c.backends {
		ds, err := b.Delete(ctx, tenant, actor, names)
		if err != nil {
			return nil, fmt.Errorf("%s backend: %w", b.Name(), err)
		}
		for _, n := range ds {
			deleted[n] = true
		}
	}
	out := []string{}
	for _, n := range names {
		if deleted[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

func missing(names []string, found map[string]Description) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if _, ok := found[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}
