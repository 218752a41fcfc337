package ui

import (
	"html/template"
	"net/http"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
)

type calRow struct {
	P      *calendarv1.CalendarProvider
	Status statusView
	Mine   bool
}

type calendarData struct {
	Config        *oauthv1.GoogleConfig
	CalendarReady bool
	UsesShared    bool
	ClientMasked  string
	IsAdmin       bool
	User          string
	Listed        bool
	Mine          *calRow
	All           []calRow
	Selected      *calRow
	Diag          *calendarv1.CalendarDiagnostics
	Activity      *activity
	Chart         template.HTML
	Runs          *runsView
}

func (s *Server) calendarPage(w http.ResponseWriter, r *http.Request, sess *session) {
	v := &view{Title: "Google Calendar", Nav: "calendar", Session: sess}
	v.Notices = append(oauthNotice(r), doneNotice(r)...)
	d := calendarData{IsAdmin: sess.canEdit(), User: sess.id.Subject}
	v.Data = &d
	cfg, err := s.googleConfig(r, sess)
	if err != nil && s.callFailed(w, r, v, "The Google setup", err) {
		return
	}
	d.Config, d.CalendarReady = cfg, cfg.GetCalendarReady()
	d.UsesShared = cfg.GetUseSameApp()
	d.ClientMasked = cfg.GetCalendarClientIdMasked()
	if d.UsesShared {
		d.ClientMasked = cfg.GetGmailClientIdMasked()
	}
	conn := s.conn(PeerCalendar)
	if conn == nil {
		v.Notices = append(v.Notices, notice{Kind: "error", Title: "Calendar is not available.", Text: "The calendar service is not served by this gateway."})
		s.render(w, "calendar", v)
		return
	}
	client := calendarv1.NewCalendarProviderServiceClient(conn)
	ctx, cancel := callCtx(r.Context())
	defer cancel()
	ctx = sess.outgoing(ctx)
	own, err := client.ListCalendarProviders(ctx, &calendarv1.ListCalendarProvidersRequest{})
	if err != nil {
		if s.callFailed(w, r, v, "Your calendar", err) {
			return
		}
		s.render(w, "calendar", v)
		return
	}
	d.Listed = true
	for _, p := range own.GetProviders() {
		if p.GetUserId() == sess.id.Subject {
			row := calRow{P: p, Status: providerStatus(p.GetStatus().String()), Mine: true}
			d.Mine = &row
			break
		}
	}
	if d.IsAdmin {
		all, err := client.ListCalendarProviders(ctx, &calendarv1.ListCalendarProvidersRequest{AllUsers: true})
		if err != nil {
			if s.callFailed(w, r, v, "The technicians' calendars", err) {
				return
			}
		}
		for _, p := range all.GetProviders() {
			d.All = append(d.All, calRow{P: p, Status: providerStatus(p.GetStatus().String()), Mine: p.GetUserId() == sess.id.Subject})
		}
	}
	want := r.URL.Query().Get("provider")
	switch {
	case want != "":
		diag, err := client.GetCalendarProviderDiagnostics(ctx, &calendarv1.GetCalendarProviderDiagnosticsRequest{Id: want})
		if err != nil {
			if notAvailable(err) || isInvalid(err) {
				v.Notices = append(v.Notices, notice{Kind: "warn", Text: "That calendar does not exist or is not yours to see.", Title: "Not found."})
			} else if s.callFailed(w, r, v, "The calendar", err) {
				return
			}
		} else {
			p := diag.GetProvider()
			d.Selected = &calRow{P: p, Status: providerStatus(p.GetStatus().String()), Mine: p.GetUserId() == sess.id.Subject}
			d.Diag = diag.GetDiagnostics()
		}
	case d.Mine != nil:
		d.Selected = d.Mine
		if diag, err := client.GetCalendarProviderDiagnostics(ctx, &calendarv1.GetCalendarProviderDiagnosticsRequest{Id: d.Mine.P.GetId()}); err == nil {
			d.Diag = diag.GetDiagnostics()
			if p := diag.GetProvider(); p != nil {
				d.Selected.P, d.Selected.Status = p, providerStatus(p.GetStatus().String())
			}
		}
	}
	if d.Selected != nil {
		id := d.Selected.P.GetId()
		d.Activity = s.calendarActivity(ctx, conn, id)
		d.Runs = s.maintenanceRuns(ctx, maintenancev1.ProviderKind_PROVIDER_KIND_CALENDAR, id)
		in := chartInput{Now: s.opt.Now(), Title: "Calendar activity, last 7 days", Series: calendarSeries}
		if d.Activity != nil {
			in.Days = d.Activity.Days
		}
		if t, ok := asTime(d.Selected.P.GetChannelExpireTime()); ok {
			in.Expiry, in.ExpiryLabel = t, "channel expires"
		}
		in.Runs = d.Runs.marks()
		d.Chart = renderChart(in)
	}
	s.render(w, "calendar", v)
}
