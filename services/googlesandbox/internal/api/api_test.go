package api

import (
	"encoding/json"
	"testing"
	"time"
)

func TestFaultLatencyJSON(t *testing.T) {
	b, err := json.Marshal(Fault{Endpoint: "gmail.*", Latency: 250 * time.Millisecond, Times: 2})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"endpoint":"gmail.*","times":2,"latency":"250ms"}` {
		t.Fatalf("got %s", b)
	}
	for _, in := range []string{`{"endpoint":"x","latency":"250ms"}`, `{"endpoint":"x","latency":250000000}`} {
		var f Fault
		if err := json.Unmarshal([]byte(in), &f); err != nil || f.Latency != 250*time.Millisecond || f.Endpoint != "x" {
			t.Fatalf("%s: %v %+v", in, err, f)
		}
	}
	var f Fault
	if err := json.Unmarshal([]byte(`{"latency":"soon"}`), &f); err == nil {
		t.Fatal("want error")
	}
}
