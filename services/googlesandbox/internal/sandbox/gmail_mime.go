package sandbox

// MIME parsing for messages.get and messages.attachments.get: turns a raw RFC 822 message into Gmail's payload
// part tree (part ids "0", "0.1", ...), base64url bodies, attachments by id and the snippet. Parsing never
// fails (a bad Content-Type is read as text/plain), and nesting stops at maxMIMEDepth so that a hostile message
// cannot exhaust the stack (FuzzParseMIME).

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"strconv"
	"strings"

	gmail "google.golang.org/api/gmail/v1"
)

type headerField struct{ name, value string }

// splitMessage splits raw into ordered, unfolded header fields and the body.
func splitMessage(raw []byte) ([]headerField, []byte) {
	var fields []headerField
	rest := raw
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		var line []byte
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i], rest[i+1:]
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return fields, rest
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1].value += " " + strings.TrimSpace(string(line))
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			// Not a header: treat everything from here as body.
			return fields, append(line, append([]byte("\n"), rest...)...)
		}
		fields = append(fields, headerField{strings.TrimSpace(string(k)), strings.TrimSpace(string(v))})
	}
	return fields, nil
}

func headerValue(fields []headerField, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

func decodeBody(enc string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		out, err := base64.StdEncoding.DecodeString(string(clean))
		if err != nil {
			out, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(string(clean), "="))
			if err != nil {
				return body
			}
		}
		return out
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return body
		}
		return out
	}
	return body
}

const maxMIMEDepth = 20

type mimeResult struct {
	snippet     string
	attachments map[string][]byte
}

// parseMIME renders a raw message as Gmail's payload part tree and returns a snippet.
func parseMIME(raw []byte) (*gmail.MessagePart, string) {
	p, res := parseMIMEFull(raw)
	return p, res.snippet
}

func parseMIMEFull(raw []byte) (*gmail.MessagePart, *mimeResult) {
	res := &mimeResult{attachments: map[string][]byte{}}
	p := buildPart("", raw, 0, res)
	return p, res
}

func buildPart(partID string, raw []byte, depth int, res *mimeResult) *gmail.MessagePart {
	fields, body := splitMessage(raw)
	p := &gmail.MessagePart{PartId: partID, Body: &gmail.MessagePartBody{}}
	for _, f := range fields {
		p.Headers = append(p.Headers, &gmail.MessagePartHeader{Name: f.name, Value: f.value})
	}
	ct := headerValue(fields, "Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mediaType, params = "text/plain", nil
	}
	p.MimeType = mediaType
	if cd := headerValue(fields, "Content-Disposition"); cd != "" {
		if _, dp, err := mime.ParseMediaType(cd); err == nil {
			p.Filename = dp["filename"]
		}
	}
	if p.Filename == "" && params["name"] != "" && !strings.HasPrefix(mediaType, "text/") {
		p.Filename = params["name"]
	}
	if strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "" && depth < maxMIMEDepth {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for i := 0; ; i++ {
			part, err := mr.NextRawPart()
			if err != nil {
				break
			}
			var hb bytes.Buffer
			for _, k := range sortedKeys(part.Header) {
				for _, v := range part.Header[k] {
					fmt.Fprintf(&hb, "%s: %s\r\n", k, v)
				}
			}
			hb.WriteString("\r\n")
			data, _ := io.ReadAll(io.LimitReader(part, 50<<20))
			hb.Write(data)
			childID := strconv.Itoa(i)
			if partID != "" {
				childID = partID + "." + childID
			}
			p.Parts = append(p.Parts, buildPart(childID, hb.Bytes(), depth+1, res))
		}
		p.Body.ForceSendFields = []string{"Size"}
		return p
	}
	data := decodeBody(headerValue(fields, "Content-Transfer-Encoding"), body)
	p.Body.Size = int64(len(data))
	if p.Filename != "" {
		p.Body.AttachmentId = attachmentID(partID)
		res.attachments[p.Body.AttachmentId] = data
	} else {
		p.Body.Data = base64.URLEncoding.EncodeToString(data)
	}
	if res.snippet == "" && mediaType == "text/plain" && p.Filename == "" {
		res.snippet = makeSnippet(string(data))
	}
	return p
}

func attachmentID(partID string) string {
	return "ANGjdJ" + base64.RawURLEncoding.EncodeToString([]byte("part:"+partID))
}

func makeSnippet(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	if r := []rune(t); len(r) > 100 {
		t = string(r[:100])
	}
	return t
}
