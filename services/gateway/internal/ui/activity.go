package ui

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// activity is what a provider page shows of recent traffic: 7 daily counts and the latest items
// (inbound messages of a mailbox, changes of a calendar).
type activity struct {
	Days     []dayCount
	Messages []messageRow
	Changes  []changeRow
}

type messageRow struct {
	Time          time.Time
	From, Subject string
}

type changeRow struct {
	Time                time.Time
	Type, Summary, When string
}

func (s *Server) gmailActivity(_ context.Context, _ *grpc.ClientConn, _ string) *activity { return nil }

func (s *Server) calendarActivity(_ context.Context, _ *grpc.ClientConn, _ string) *activity {
	return nil
}
