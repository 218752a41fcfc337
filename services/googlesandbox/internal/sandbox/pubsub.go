package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
	"github.com/algapsa/alga-google/services/googlesandbox/internal/keys"
)

// PubSub is the gRPC side of the sandbox: pstest's publisher/subscriber plus the IAM policy service.
type PubSub struct {
	GRPC *grpc.Server
	pst  *pstest.Server
}

// StartPubSub creates pstest, registers it and the IAM policy service on a gRPC server with counting/fault
// interceptors, serves it on lis, and starts the push deliverer.
func (s *Server) StartPubSub(lis net.Listener) *PubSub {
	// pstest opens a loopback listener of its own; the sandbox serves its GServer on lis instead, so the
	// interceptors and the IAM service share the address the caller asked for.
	pst := pstest.NewServerWithAddress("127.0.0.1:0")
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(s.unaryInterceptor), grpc.ChainStreamInterceptor(s.streamInterceptor))
	pubsubpb.RegisterPublisherServer(g, &pst.GServer)
	pubsubpb.RegisterSubscriberServer(g, &pst.GServer)
	pubsubpb.RegisterSchemaServiceServer(g, &pst.GServer)
	iampb.RegisterIAMPolicyServer(g, &iamServer{s: s})
	s.mu.Lock()
	s.pst = pst
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = g.Serve(lis)
	}()
	s.wg.Add(1)
	go s.runPushLoop()
	return &PubSub{GRPC: g, pst: pst}
}

// Stop stops the gRPC server and pstest.
func (p *PubSub) Stop() {
	p.GRPC.Stop()
	_ = p.pst.Close()
}

func methodName(full string) string {
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[i+1:]
	}
	return full
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ep := "pubsub." + methodName(info.FullMethod)
	s.mu.Lock()
	s.count(ep, "")
	d := s.decide("", ep)
	s.mu.Unlock()
	if !sleep(ctx, d.Latency) {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if d.ForceError != "" {
		return nil, status.Error(grpcCode(d.ForceError), "forced error ("+d.ForceError+")")
	}
	if d.Status == 429 {
		return nil, status.Error(codes.ResourceExhausted, "Quota exceeded")
	}
	if d.Status != 0 {
		return nil, status.Error(codes.Unavailable, "The service is currently unavailable.")
	}
	return handler(ctx, req)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	s.mu.Lock()
	s.count("pubsub."+methodName(info.FullMethod), "")
	s.mu.Unlock()
	return handler(srv, ss)
}

func grpcCode(name string) codes.Code {
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 17 {
		return codes.Code(n)
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if strings.EqualFold(strings.ReplaceAll(c.String(), "_", ""), strings.ReplaceAll(name, "_", "")) {
			return c
		}
	}
	return codes.Internal
}

// ---- IAM ----

type iamServer struct {
	iampb.UnimplementedIAMPolicyServer
	s *Server
}

var (
	topicName = regexp.MustCompile(`^projects/[^/]+/topics/[^/]+$`)
	subName   = regexp.MustCompile(`^projects/[^/]+/subscriptions/[^/]+$`)
	memberRE  = regexp.MustCompile(`^(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|principal|principalSet|deleted:user|deleted:serviceAccount|deleted:group):.+)$`)
	emptyEtag = []byte{0x00, 0x10, 0x01} // "ACAB" in base64, the etag of an empty policy
)

var pubsubRoles = []string{"roles/owner", "roles/editor", "roles/viewer", "roles/pubsub.admin", "roles/pubsub.editor",
	"roles/pubsub.publisher", "roles/pubsub.subscriber", "roles/pubsub.viewer"}

// resourceExists reports whether a topic or subscription exists in pstest. Caller holds s.mu.
func (s *Server) resourceExists(name string) (bool, error) {
	if s.pst == nil {
		return false, status.Error(codes.Unavailable, "pubsub not started")
	}
	switch {
	case topicName.MatchString(name):
		_, err := s.pst.GServer.GetTopic(context.Background(), &pubsubpb.GetTopicRequest{Topic: name})
		return err == nil, nil
	case subName.MatchString(name):
		_, err := s.pst.GServer.GetSubscription(context.Background(), &pubsubpb.GetSubscriptionRequest{Subscription: name})
		return err == nil, nil
	}
	return false, status.Errorf(codes.InvalidArgument, "Invalid resource name given (name=%s). Refer to https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names for more information.", name)
}

func (s *Server) topicExists(name string) bool {
	ok, _ := s.resourceExists(name)
	return ok && topicName.MatchString(name)
}

func (s *Server) policyOf(resource string) *iampb.Policy {
	if p := s.policies[resource]; p != nil {
		return proto.Clone(p).(*iampb.Policy)
	}
	return &iampb.Policy{Version: 1, Etag: slices.Clone(emptyEtag)}
}

func (i *iamServer) GetIamPolicy(_ context.Context, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	s := i.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ok, err := s.resourceExists(req.GetResource())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource not found (resource=%s).", lastSegment(req.GetResource()))
	}
	return s.policyOf(req.GetResource()), nil
}

func (i *iamServer) SetIamPolicy(_ context.Context, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	s := i.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ok, err := s.resourceExists(req.GetResource())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource not found (resource=%s).", lastSegment(req.GetResource()))
	}
	p := req.GetPolicy()
	if p == nil {
		return nil, status.Error(codes.InvalidArgument, "Request contains an invalid argument: policy is required.")
	}
	cur := s.policyOf(req.GetResource())
	if len(p.GetEtag()) > 0 && !bytes.Equal(p.GetEtag(), cur.GetEtag()) {
		return nil, status.Error(codes.Aborted, "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.")
	}
	for _, b := range p.GetBindings() {
		if !slices.Contains(pubsubRoles, b.GetRole()) {
			return nil, status.Errorf(codes.InvalidArgument, "Role %s is not supported for this resource.", b.GetRole())
		}
		if len(b.GetMembers()) == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "Binding for role %s has no members.", b.GetRole())
		}
		for _, m := range b.GetMembers() {
			if !memberRE.MatchString(m) {
				return nil, status.Errorf(codes.InvalidArgument, "Invalid member: %s", m)
			}
		}
	}
	np := proto.Clone(p).(*iampb.Policy)
	if np.Version == 0 {
		np.Version = 1
	}
	s.policyVersions[req.GetResource()]++
	np.Etag = []byte("BwY" + strconv.Itoa(s.policyVersions[req.GetResource()]) + randHex(6))
	s.policies[req.GetResource()] = np
	return proto.Clone(np).(*iampb.Policy), nil
}

// TestIamPermissions grants every Pub/Sub permission asked for: the emulator has no caller identity.
func (i *iamServer) TestIamPermissions(_ context.Context, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	s := i.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ok, err := s.resourceExists(req.GetResource())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource not found (resource=%s).", lastSegment(req.GetResource()))
	}
	var out []string
	for _, p := range req.GetPermissions() {
		if !strings.HasPrefix(p, "pubsub.") {
			return nil, status.Errorf(codes.InvalidArgument, "Permission %s is not valid for this resource.", p)
		}
		out = append(out, p)
	}
	return &iampb.TestIamPermissionsResponse{Permissions: out}, nil
}

func lastSegment(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

var publisherRoles = []string{"roles/pubsub.publisher", "roles/pubsub.editor", "roles/pubsub.admin", "roles/editor", "roles/owner"}

// publisherAllowed reports whether account may publish to topic per the topic's policy. Caller holds s.mu.
func (s *Server) publisherAllowed(topic, account string) bool {
	p := s.policies[topic]
	if p == nil {
		return false
	}
	for _, b := range p.GetBindings() {
		if slices.Contains(publisherRoles, b.GetRole()) && slices.Contains(b.GetMembers(), "serviceAccount:"+account) {
			return true
		}
	}
	return false
}

func (s *Server) topicPolicy(resource string) api.TopicPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.policyOf(resource)
	out := api.TopicPolicy{Resource: resource, Etag: base64.StdEncoding.EncodeToString(p.GetEtag()), Version: p.GetVersion(), Bindings: []api.Binding{}}
	for _, b := range p.GetBindings() {
		out.Bindings = append(out.Bindings, api.Binding{Role: b.GetRole(), Members: slices.Clone(b.GetMembers())})
	}
	return out
}

func (s *Server) subscriptionInfo(name string) (api.Subscription, error) {
	s.mu.Lock()
	pst := s.pst
	s.mu.Unlock()
	if pst == nil {
		return api.Subscription{}, fmt.Errorf("pubsub not started")
	}
	sub, err := pst.GServer.GetSubscription(context.Background(), &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err != nil {
		return api.Subscription{}, err
	}
	out := api.Subscription{Name: sub.GetName(), Topic: sub.GetTopic(), AckDeadlineSeconds: sub.GetAckDeadlineSeconds(), Filter: sub.GetFilter()}
	if pc := sub.GetPushConfig(); pc != nil {
		out.PushEndpoint = pc.GetPushEndpoint()
		if o := pc.GetOidcToken(); o != nil {
			out.Audience, out.ServiceAccountEmail = o.GetAudience(), o.GetServiceAccountEmail()
		}
		out.NoWrapper = pc.GetNoWrapper() != nil
	}
	if ep := sub.GetExpirationPolicy(); ep != nil {
		out.ExpirationPolicy = &api.ExpirationPolicy{Never: ep.GetTtl() == nil}
		if ep.GetTtl() != nil {
			out.ExpirationPolicy.TTL = ep.GetTtl().AsDuration()
		}
	}
	return out, nil
}

// ---- push delivery ----

func (s *Server) runPushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PushPollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
			s.pollPush()
		}
	}
}

var pushOK = []int{102, 200, 201, 202, 204}

func (s *Server) pollPush() {
	s.mu.Lock()
	pst := s.pst
	s.mu.Unlock()
	if pst == nil {
		return
	}
	ctx := s.bg
	var subs []*pubsubpb.Subscription
	tok := ""
	for {
		resp, err := pst.GServer.ListSubscriptions(ctx, &pubsubpb.ListSubscriptionsRequest{PageToken: tok})
		if err != nil {
			return
		}
		subs = append(subs, resp.GetSubscriptions()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	for _, sub := range subs {
		if sub.GetPushConfig().GetPushEndpoint() == "" {
			continue
		}
		//lint:ignore SA1019 deprecated for the real service only: pstest honours it, and without it waits 500 ms on every empty subscription, stalling this poll loop
		pr, err := pst.GServer.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub.GetName(), MaxMessages: 50, ReturnImmediately: true})
		if err != nil {
			continue
		}
		for _, rm := range pr.GetReceivedMessages() {
			key := sub.GetName() + "|" + rm.GetMessage().GetMessageId()
			// Hold the message while this deliverer retries it.
			_, _ = pst.GServer.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: sub.GetName(), AckIds: []string{rm.GetAckId()}, AckDeadlineSeconds: 600})
			s.mu.Lock()
			busy := s.inflight[key]
			if !busy {
				s.inflight[key] = true
			}
			s.mu.Unlock()
			if busy {
				continue
			}
			s.wg.Add(1)
			go s.pushMessage(pst, sub.GetName(), rm)
		}
	}
}

type pushEnvelope struct {
	Message      pushMessage `json:"message"`
	Subscription string      `json:"subscription"`
}

type pushMessage struct {
	Data        string            `json:"data,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId"`
	MessageID2  string            `json:"message_id"`
	PublishTime string            `json:"publishTime"`
	PublishTim2 string            `json:"publish_time"`
	OrderingKey string            `json:"orderingKey,omitempty"`
}

func (s *Server) pushMessage(pst *pstest.Server, subName string, rm *pubsubpb.ReceivedMessage) {
	defer s.wg.Done()
	ctx := s.bg
	m := rm.GetMessage()
	key := subName + "|" + m.GetMessageId()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, key)
		s.mu.Unlock()
	}()
	ack := func() {
		_, _ = pst.GServer.Acknowledge(context.Background(), &pubsubpb.AcknowledgeRequest{Subscription: subName, AckIds: []string{rm.GetAckId()}})
	}
	backoff := s.cfg.PushMinBackoff
	for attempt := 1; attempt <= s.cfg.PushMaxAttempts; attempt++ {
		sub, err := pst.GServer.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: subName})
		if err != nil || sub.GetPushConfig().GetPushEndpoint() == "" {
			return // deleted, or turned into a pull subscription: leave the message to pull
		}
		pc := sub.GetPushConfig()
		endpoint := pc.GetPushEndpoint()
		s.mu.Lock()
		s.count("pubsub.push", subName)
		d := s.decide("", "pubsub.push")
		s.mu.Unlock()
		rec := api.Delivery{Kind: "pubsub", Target: subName, Address: endpoint, ID: m.GetMessageId(), Attempt: attempt, At: time.Now()}
		if d.Drop {
			ack()
			rec.Outcome = "dropped"
			s.mu.Lock()
			s.count("pubsub.push.dropped", subName)
			s.recordDelivery(rec)
			s.mu.Unlock()
			return
		}
		if !sleep(ctx, d.Latency) {
			return
		}
		hdr := http.Header{}
		var body []byte
		if nw := pc.GetNoWrapper(); nw != nil {
			body = m.GetData()
			hdr.Set("Content-Type", "application/octet-stream")
			if nw.GetWriteMetadata() {
				hdr.Set("x-goog-pubsub-message-id", m.GetMessageId())
				hdr.Set("x-goog-pubsub-publish-time", m.GetPublishTime().AsTime().UTC().Format(time.RFC3339Nano))
				hdr.Set("x-goog-pubsub-subscription-name", subName)
				for k, v := range m.GetAttributes() {
					hdr.Set(k, v)
				}
			}
		} else {
			pt := m.GetPublishTime().AsTime().UTC().Format(time.RFC3339Nano)
			env := pushEnvelope{Subscription: subName, Message: pushMessage{MessageID: m.GetMessageId(), MessageID2: m.GetMessageId(),
				PublishTime: pt, PublishTim2: pt, Attributes: m.GetAttributes(), OrderingKey: m.GetOrderingKey()}}
			if len(m.GetData()) > 0 {
				env.Message.Data = base64.StdEncoding.EncodeToString(m.GetData())
			}
			if env.Message.Attributes == nil {
				env.Message.Attributes = map[string]string{}
			}
			body, _ = json.Marshal(env)
			hdr.Set("Content-Type", "application/json")
		}
		if o := pc.GetOidcToken(); o != nil {
			tok, err := s.pushToken(o.GetServiceAccountEmail(), o.GetAudience(), endpoint)
			if err == nil {
				hdr.Set("Authorization", "Bearer "+tok)
			}
		}
		timeout := time.Duration(sub.GetAckDeadlineSeconds()) * time.Second
		if timeout <= 0 {
			timeout = defaultPushAckTimeout
		}
		var st int
		switch {
		case d.ForceError != "":
			st, err = 0, fmt.Errorf("forced error %s", d.ForceError)
		case d.Status != 0:
			st, err = 0, fmt.Errorf("forced status %d", d.Status)
		default:
			st, err = s.post(ctx, endpoint, hdr, body, timeout)
		}
		rec.Status, rec.Duration = st, time.Since(rec.At).String()
		if err != nil {
			rec.Error = err.Error()
		}
		if err == nil && slices.Contains(pushOK, st) {
			ack()
			rec.Outcome = "acked"
			s.mu.Lock()
			s.count("pubsub.push.acked", subName)
			s.recordDelivery(rec)
			s.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return
		}
		rec.Outcome = "retry"
		if attempt == s.cfg.PushMaxAttempts {
			rec.Outcome = "gave_up"
		}
		s.mu.Lock()
		s.count("pubsub.push.failed", subName)
		s.recordDelivery(rec)
		s.mu.Unlock()
		if attempt == s.cfg.PushMaxAttempts {
			ack() // bounded retries: the message is dropped after the last attempt
			return
		}
		_, _ = pst.GServer.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: subName, AckIds: []string{rm.GetAckId()}, AckDeadlineSeconds: 600})
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, s.cfg.PushMaxBackoff)
	}
}

// pushToken mints the OIDC token Pub/Sub attaches to a push (wall clock iat/exp).
func (s *Server) pushToken(saEmail, audience, endpoint string) (string, error) {
	if audience == "" {
		audience = endpoint
	}
	s.mu.Lock()
	sub := ""
	if sa := s.serviceAccts[saEmail]; sa != nil {
		sub = sa.clientID
	}
	s.mu.Unlock()
	if sub == "" {
		sub = stableDigits(saEmail)
	}
	now := time.Now()
	return keys.Sign(s.signKey, s.signKid, map[string]any{
		"iss": Issuer, "aud": audience, "azp": sub, "sub": sub, "email": saEmail, "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
}

func stableDigits(s string) string {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return "10" + fmt.Sprintf("%019d", h%1e19)
}
