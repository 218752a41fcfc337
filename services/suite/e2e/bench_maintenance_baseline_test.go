package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"
	calendar "google.golang.org/api/calendar/v3"
	gmail "google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/algapsa/alga-google/services/platform/googleapi"
)

// baseline issues, straight at the sandbox with Google's own client libraries, the calls one pass makes
// for every provider — per Gmail provider a token refresh, topics.get, getIamPolicy, subscriptions.get,
// labels.list, users.watch and history.list; per Calendar provider a token refresh, events.watch,
// channels.stop and events.list — `parallel` providers at a time, each provider's calls in order, as the
// worker runs them. Nothing of ours is in the path: it measures the sandbox's own throughput for those
// calls, in the same process and run as the pass it is compared with. Clients are made beforehand (a
// Pub/Sub client per tenant, one HTTP transport), so only the calls are timed. The sandbox state it
// leaves is the pass's: the watch it renews is the mailbox's (same client and topic), and the channel it
// opens it stops again (its "sync" message goes to a receiver of its own).
func (w *benchWorld) baseline(ctx context.Context, parallel int) (time.Duration, map[string]int64, error) {
	endpoints := googleapi.New(w.sb.URL(), w.sb.PubSubAddr())
	receiver := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusOK) }))
	defer receiver.Close()
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConns: 4 * parallel, MaxIdleConnsPerHost: 4 * parallel, IdleConnTimeout: time.Minute}}
	defer hc.CloseIdleConnections()
	hctx := context.WithValue(ctx, oauth2.HTTPClient, hc)

	type job struct {
		t     *benchTenant
		a     benchAccount
		gmail bool
		ps    *pubsub.Client
	}
	var jobs []job
	for _, t := range w.tenants {
		var ps *pubsub.Client
		if len(t.gmail) > 0 {
			var err error
			ps, err = pubsub.NewClient(ctx, t.project.ProjectID, option.WithEndpoint(w.sb.PubSubAddr()), option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
			if err != nil {
				return 0, nil, err
			}
			defer ps.Close()
		}
		for _, a := range t.gmail {
			jobs = append(jobs, job{t: t, a: a, gmail: true, ps: ps})
		}
		for _, a := range t.calendar {
			jobs = append(jobs, job{t: t, a: a})
		}
	}
	do := func(j job) error {
		cfg := &oauth2.Config{ClientID: j.t.project.ClientID, ClientSecret: j.t.project.ClientSecret, Endpoint: endpoints.OAuthEndpoint()}
		tok, err := cfg.TokenSource(hctx, &oauth2.Token{RefreshToken: j.a.grant.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
		if err != nil {
			return fmt.Errorf("refreshing %s: %w", j.a.email, err)
		}
		api := option.WithHTTPClient(oauth2.NewClient(hctx, oauth2.StaticTokenSource(tok)))
		if j.gmail {
			if _, err := j.ps.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: j.t.topic}); err != nil {
				return err
			}
			if _, err := j.ps.TopicAdminClient.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: j.t.topic}); err != nil {
				return err
			}
			if _, err := j.ps.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: j.t.subscription}); err != nil {
				return err
			}
			gm, err := gmail.NewService(ctx, append(endpoints.GmailOptions(), api)...)
			if err != nil {
				return err
			}
			if _, err := gm.Users.Labels.List("me").Context(ctx).Do(); err != nil {
				return err
			}
			watch, err := gm.Users.Watch("me", &gmail.WatchRequest{TopicName: j.t.topic, LabelIds: []string{"INBOX"}, LabelFilterBehavior: "include"}).Context(ctx).Do()
			if err != nil {
				return fmt.Errorf("users.watch of %s: %w", j.a.email, err)
			}
			_, err = gm.Users.History.List("me").StartHistoryId(watch.HistoryId).HistoryTypes("messageAdded").MaxResults(500).Context(ctx).Do()
			return err
		}
		cal, err := calendar.NewService(ctx, append(endpoints.CalendarOptions(), api)...)
		if err != nil {
			return err
		}
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		ch, err := cal.Events.Watch("primary", &calendar.Channel{Id: hex.EncodeToString(id), Type: "web_hook", Address: receiver.URL}).Context(ctx).Do()
		if err != nil {
			return fmt.Errorf("events.watch of %s: %w", j.a.email, err)
		}
		if err := cal.Channels.Stop(&calendar.Channel{Id: ch.Id, ResourceId: ch.ResourceId}).Context(ctx).Do(); err != nil {
			return err
		}
		_, err = cal.Events.List("primary").SingleEvents(true).Context(ctx).Do()
		return err
	}

	before, err := w.googleCalls(ctx)
	if err != nil {
		return 0, nil, err
	}
	began := time.Now()
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, j := range jobs {
		g.Go(func() error { return do(j) })
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	took := time.Since(began)
	after, err := w.googleCalls(ctx)
	if err != nil {
		return 0, nil, err
	}
	return took, benchDelta(before, after), nil
}
