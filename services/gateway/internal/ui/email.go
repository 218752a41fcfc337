package ui

import (
	"html/template"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
)

// statusView is a provider status as shown: a stable key (CSS class, tests) and a label.
type statusView struct{ Key, Label string }

func providerStatus(name string) statusView {
	key := strings.ToLower(strings.TrimPrefix(name, "PROVIDER_STATUS_"))
	labels := map[string]string{"connected": "Connected", "disconnected": "Disconnected", "connecting": "Connecting",
		"error": "Error", "paused": "Paused"}
	if l, ok := labels[key]; ok {
		return statusView{key, l}
	}
	return statusView{"unknown", "Unknown"}
}

type gmailRow struct {
	P      *gmailv1.GmailProvider
	Status statusView
	Labels string
}

type emailData struct {
	Config     *oauthv1.GoogleConfig
	GmailReady bool
	CanEdit    bool
	Listed     bool
	Providers  []gmailRow
	Selected   *gmailRow
	Diag       *gmailv1.GmailDiagnostics
	Activity   *activity
	Chart      template.HTML
	Runs       *runsView
}

func (s *Server) emailPage(w http.ResponseWriter, r *http.Request, sess *session) {
	v := &view{Title: "Gmail inbound", Nav: "email", Session: sess}
	v.Notices = append(oauthNotice(r), doneNotice(r)...)
	d := emailData{CanEdit: sess.canEdit()}
	v.Data = &d
	cfg, err := s.googleConfig(r, sess)
	if err != nil && s.callFailed(w, r, v, "The Google setup", err) {
		return
	}
	d.Config, d.GmailReady = cfg, cfg.GetGmailReady()
	conn := s.conn(PeerGmail)
	if conn == nil {
		v.Notices = append(v.Notices, notice{Kind: "error", Title: "Gmail is not available.", Text: "The gmail service is not served by this gateway."})
		s.render(w, "email", v)
		return
	}
	client := gmailv1.NewGmailProviderServiceClient(conn)
	ctx, cancel := callCtx(r.Context())
	defer cancel()
	ctx = sess.outgoing(ctx)
	list, err := client.ListGmailProviders(ctx, &gmailv1.ListGmailProvidersRequest{})
	if err != nil {
		if s.callFailed(w, r, v, "The mailboxes", err) {
			return
		}
		s.render(w, "email", v)
		return
	}
	d.Listed = true
	want := r.URL.Query().Get("provider")
	for _, p := range list.GetProviders() {
		row := gmailRow{P: p, Status: providerStatus(p.GetStatus().String()), Labels: strings.Join(p.GetLabelFilters(), ", ")}
		d.Providers = append(d.Providers, row)
		if p.GetId() == want {
			sel := row
			d.Selected = &sel
		}
	}
	if d.Selected == nil && want == "" && len(d.Providers) > 0 {
		sel := d.Providers[0]
		d.Selected = &sel
	}
	if want != "" && d.Selected == nil {
		v.Notices = append(v.Notices, notice{Kind: "warn", Text: "That mailbox does not exist (it may have been deleted)."})
	}
	if d.Selected != nil {
		id := d.Selected.P.GetId()
		diag, err := client.GetGmailProviderDiagnostics(ctx, &gmailv1.GetGmailProviderDiagnosticsRequest{Id: id})
		if err != nil {
			if s.callFailed(w, r, v, "The diagnostics", err) {
				return
			}
		} else {
			d.Diag = diag.GetDiagnostics()
			if p := diag.GetProvider(); p != nil {
				d.Selected.P = p
				d.Selected.Status = providerStatus(p.GetStatus().String())
			}
		}
		d.Activity = s.gmailActivity(ctx, conn, id)
		d.Runs = s.maintenanceRuns(ctx, maintenancev1.ProviderKind_PROVIDER_KIND_GMAIL, id)
		in := chartInput{Now: s.opt.Now(), Title: "Mailbox activity, last 7 days", Series: gmailSeries}
		if d.Activity != nil {
			in.Days = d.Activity.Days
		}
		if t, ok := asTime(d.Selected.P.GetWatchExpireTime()); ok {
			in.Expiry, in.ExpiryLabel = t, "watch expires"
		}
		in.Runs = d.Runs.marks()
		d.Chart = renderChart(in)
	}
	s.render(w, "email", v)
}

// notAvailable reports the answers of an API that does not exist (yet) behind this gateway.
func notAvailable(err error) bool {
	switch status.Code(err) {
	case codes.Unimplemented, codes.Unavailable, codes.NotFound:
		return true
	}
	return false
}

func isInvalid(err error) bool { return status.Code(err) == codes.InvalidArgument }
