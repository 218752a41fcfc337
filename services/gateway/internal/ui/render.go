package ui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// contentSecurityPolicy allows only what the binary serves: no inline script or style, no other origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

var funcs = template.FuncMap{
	"when":   fmtTime,
	"ago":    ago,
	"join":   strings.Join,
	"lower":  strings.ToLower,
	"has":    func(list []string, s string) bool { return contains(list, s) },
	"upper1": upper1,
	"add":    func(a, b int) int { return a + b },
	"dict":   dict,
	"pretty": pretty,
}

// pretty shows an enum value such as "CONNECTION_STATUS_EXPIRED_TESTING" as "expired testing".
func pretty(s string) string {
	for _, p := range []string{"CONNECTION_STATUS_", "PROVIDER_STATUS_"} {
		s = strings.TrimPrefix(s, p)
	}
	return strings.ReplaceAll(strings.ToLower(s), "_", " ")
}

// dict builds a map for passing several values to a sub-template.
func dict(kv ...any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok {
			m[k] = kv[i+1]
		}
	}
	return m
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func upper1(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func fmtTime(v any) string {
	t, ok := asTime(v)
	if !ok {
		return "—"
	}
	return t.UTC().Format("Mon 2 Jan 2006 15:04 UTC")
}

func asTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case *timestamppb.Timestamp:
		if t == nil || (t.Seconds == 0 && t.Nanos == 0) {
			return time.Time{}, false
		}
		return t.AsTime(), true
	case time.Time:
		return t, !t.IsZero()
	}
	return time.Time{}, false
}

// ago is a relative time ("3 min ago", "in 6 days").
func ago(v any) string {
	t, ok := asTime(v)
	if !ok {
		return "never"
	}
	d := time.Until(t)
	future := d > 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/_*.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// notice is a message shown at the top of a page.
type notice struct {
	Kind     string // ok | warn | error | info
	Title    string
	Text     string
	Link     string
	LinkText string
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	Session *session
	Dev     bool
	Static  string
	Notices []notice
	Data    any
}

func (s *Server) render(w http.ResponseWriter, name string, v *view) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	v.Dev = s.opt.Dev
	v.Static = StaticPrefix
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		s.opt.Logger.Error("ui: rendering failed", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// page wraps a page handler: canonical host in --dev, the session (or the sign-in page), headers.
func (s *Server) page(fn func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opt.Dev && r.Host != s.base.Host {
			http.Redirect(w, r, s.origin()+r.URL.RequestURI(), http.StatusFound)
			return
		}
		sess, err := s.readSession(r)
		if sess == nil {
			// Coming back from another site (Google's consent page) a SameSite=Strict cookie is not sent
			// on the first navigation: continue once from our own page, which sends it.
			if err == nil && r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.URL.Query().Get("continue") == "" {
				q := r.URL.Query()
				q.Set("continue", "1")
				next := r.URL.Path + "?" + q.Encode()
				w.Header().Set("Refresh", "0;url="+next)
				s.render(w, "continue", &view{Title: "Continuing…", Data: next})
				return
			}
			q := url.Values{"next": {r.URL.RequestURI()}}
			if err != nil {
				q.Set("expired", "1")
				http.SetCookie(w, s.sessionCookie("", -1))
			}
			http.Redirect(w, r, SignInPath+"?"+q.Encode(), http.StatusSeeOther)
			return
		}
		fn(w, r, sess)
	})
}

// staticHandler serves the embedded script, style and icon (fingerprinted by ?v=).
func (s *Server) staticHandler() http.Handler {
	fsrv := http.StripPrefix(StaticPrefix, http.FileServerFS(s.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		fsrv.ServeHTTP(w, r)
	})
}

func staticVersion(f fs.FS) string {
	h := sha256.New()
	_ = fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(f, p)
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

var (
	icoOnce sync.Once
	icoData []byte
)

// favicon serves a small ICO (one 32×32 PNG image) drawn at start-up.
func (s *Server) favicon(w http.ResponseWriter, _ *http.Request) {
	icoOnce.Do(func() { icoData = drawICO() })
	w.Header().Set("Content-Type", "image/x-icon")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(icoData)
}

func drawICO() []byte {
	const n = 32
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	blue := color.RGBA{0x1a, 0x73, 0xe8, 0xff}
	white := color.RGBA{0xff, 0xff, 0xff, 0xff}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			c := blue
			// A white "G"-ish ring.
			dx, dy := x-n/2, y-n/2
			r2 := dx*dx + dy*dy
			if r2 <= 11*11 && r2 >= 7*7 && !(dx > 0 && dy < 0 && dy > -7) {
				c = white
			}
			if dy >= 0 && dy <= 2 && dx >= 0 && dx <= 10 {
				c = white
			}
			img.Set(x, y, c)
		}
	}
	var p bytes.Buffer
	_ = png.Encode(&p, img)
	var b bytes.Buffer
	le16 := func(v int) { b.WriteByte(byte(v)); b.WriteByte(byte(v >> 8)) }
	le32 := func(v int) { le16(v & 0xffff); le16(v >> 16) }
	le16(0)
	le16(1)
	le16(1) // ICONDIR: reserved, type icon, one image
	b.WriteByte(n)
	b.WriteByte(n)
	b.WriteByte(0)
	b.WriteByte(0)
	le16(1)
	le16(32)
	le32(p.Len())
	le32(6 + 16)
	b.Write(p.Bytes())
	return b.Bytes()
}
