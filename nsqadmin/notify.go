package nsqadmin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// adminAction is the JSON POSTed to --notification-http-endpoint after each
// write action, as NSQ's nsqadmin sends it.
type adminAction struct {
	Action    string `json:"action"`
	Topic     string `json:"topic"`
	Channel   string `json:"channel,omitempty"`
	Node      string `json:"node,omitempty"`
	Timestamp int64  `json:"timestamp"`
	User      string `json:"user,omitempty"`
	RemoteIP  string `json:"remote_ip"`
	UserAgent string `json:"user_agent"`
	URL       string `json:"url"`
	Via       string `json:"via"`
}

// notifier posts adminActions to the endpoint, one at a time, from its own
// goroutine: the request that triggered an action does not wait for it.
type notifier struct {
	endpoint string
	client   *http.Client
	log      *slog.Logger
	queue    chan *adminAction
}

// notifyQueueSize bounds the notifications waiting to be sent; more are
// dropped (and logged) rather than slowing the UI down.
const notifyQueueSize = 256

func newNotifier(endpoint string, client *http.Client, log *slog.Logger) *notifier {
	return &notifier{
		endpoint: endpoint,
		client:   client,
		log:      log,
		queue:    make(chan *adminAction, notifyQueueSize),
	}
}

// enabled reports whether an endpoint is configured.
func (n *notifier) enabled() bool { return n.endpoint != "" }

// send queues a notification; it never blocks.
func (n *notifier) send(a *adminAction) {
	if !n.enabled() {
		return
	}
	select {
	case n.queue <- a:
	default:
		n.log.Warn("NOTIFY: queue full, dropping notification", "action", a.Action, "topic", a.Topic)
	}
}

// loop posts queued notifications until ctx ends.
func (n *notifier) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-n.queue:
			n.post(ctx, a)
		}
	}
}

func (n *notifier) post(ctx context.Context, a *adminAction) {
	body, err := json.Marshal(a)
	if err != nil {
		n.log.Error("NOTIFY: failed to encode notification", "err", err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.endpoint, bytes.NewReader(body))
	if err != nil {
		n.log.Error("NOTIFY: bad endpoint", "endpoint", n.endpoint, "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		n.log.Error("NOTIFY: failed to post notification", "endpoint", n.endpoint, "err", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		n.log.Warn("NOTIFY: endpoint answered "+resp.Status, "endpoint", n.endpoint, "action", a.Action)
	}
}

// newAdminAction describes the action triggered by req.
func (a *NSQAdmin) newAdminAction(req *http.Request, action, topic, channel, node string) *adminAction {
	scheme := "http"
	if req.TLS != nil || req.Header.Get("X-Scheme") == "https" {
		scheme = "https"
	}
	user, _, _ := req.BasicAuth()
	return &adminAction{
		Action:    action,
		Topic:     topic,
		Channel:   channel,
		Node:      node,
		Timestamp: time.Now().Unix(),
		User:      user,
		RemoteIP:  req.RemoteAddr,
		UserAgent: req.UserAgent(),
		URL:       scheme + "://" + req.Host + req.URL.RequestURI(),
		Via:       a.hostname,
	}
}
