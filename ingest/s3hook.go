package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of WebhookOptions.
const (
	// DefaultWebhookMaxBodyBytes bounds the body of one event notification
	// (1 MiB). versitygw and MinIO POST one record of 1-2 KB per event; a
	// larger body is refused with 413 while it is read.
	DefaultWebhookMaxBodyBytes = 1 << 20
	// DefaultWebhookMinInterval is the shortest time between two listings
	// that event notifications trigger (1 s): however many events arrive,
	// they cost at most one listing per interval.
	DefaultWebhookMinInterval = time.Second
)

// WebhookOptions bound the webhook of an S3Source. Zero values take the
// defaults above.
type WebhookOptions struct {
	MaxBodyBytes int64         // largest body read; default 1 MiB
	MinInterval  time.Duration // shortest time between two triggered listings; default 1 s
}

func (o WebhookOptions) withDefaults() WebhookOptions {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultWebhookMaxBodyBytes
	}
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultWebhookMinInterval
	}
	return o
}

// s3Event is the part of an S3 event notification (the JSON that AWS puts
// in SQS and SNS messages, and that versitygw and MinIO POST to a webhook)
// that tells which object it is about.
type s3Event struct {
	Records []struct {
		EventName string `json:"eventName"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// WebhookHandler is Webhook with the default options.
func (s *S3Source) WebhookHandler() http.Handler { return s.Webhook(WebhookOptions{}) }

// Webhook returns an http.Handler for bucket event notifications POSTed by
// an S3-compatible server (versitygw's --event-webhook-url, MinIO's webhook
// target): an ObjectCreated event for a key under the prefix makes a running
// Run list the bucket soon (Notify), without waiting for PollInterval.
// Polling stays the safety net, so a lost event delays an object by at most
// PollInterval.
//
// The event is only a hint: nothing in it is used beyond waking the source.
// Events coalesce: the first one triggers a listing at once, those within
// MinInterval of it one more listing at the end of the interval, however
// many they are. A body over MaxBodyBytes is refused with 413 as soon as the
// limit is reached. The handler does not authenticate its caller: serve it
// behind a check of a shared secret (the daemon's /hooks/s3/NAME does).
func (s *S3Source) Webhook(opt WebhookOptions) http.Handler {
	opt = opt.withDefaults()
	c := &coalescer{interval: opt.MinInterval, fire: s.Notify}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST an S3 event notification", http.StatusMethodNotAllowed)
			return
		}
		if r.ContentLength > opt.MaxBodyBytes {
			tooLarge(w, r.ContentLength, opt.MaxBodyBytes)
			return
		}
		var ev s3Event
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, opt.MaxBodyBytes)).Decode(&ev); err != nil {
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				tooLarge(w, -1, opt.MaxBodyBytes)
				return
			}
			http.Error(w, "not an S3 event notification: "+err.Error(), http.StatusBadRequest)
			return
		}
		if n := s.eventObjects(ev); n > 0 {
			s.log.Debug("s3 event notification: listing soon", "objects", n)
			c.notify()
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// tooLarge answers 413 and closes the connection (the rest of the body is
// not read).
func tooLarge(w http.ResponseWriter, n, max int64) {
	w.Header().Set("Connection", "close")
	msg := fmt.Sprintf("event notification over the limit of %d bytes", max)
	if n >= 0 {
		msg = fmt.Sprintf("event notification of %d bytes is over the limit of %d bytes", n, max)
	}
	http.Error(w, msg, http.StatusRequestEntityTooLarge)
}

// eventObjects counts the records of ev that announce a new object of this
// source: ObjectCreated, in its bucket, under its prefix and outside the
// processed and invalid prefixes.
func (s *S3Source) eventObjects(ev s3Event) int {
	n := 0
	for _, rec := range ev.Records {
		if !strings.Contains(rec.EventName, "ObjectCreated") || rec.S3.Bucket.Name != s.cfg.Bucket {
			continue
		}
		key := rec.S3.Object.Key
		if k, err := url.QueryUnescape(key); err == nil { // AWS URL-encodes keys in events
			key = k
		}
		if strings.HasPrefix(key, s.cfg.Prefix) && !strings.HasPrefix(key, s.cfg.ProcessedPrefix) &&
			!strings.HasPrefix(key, s.cfg.InvalidPrefix) {
			n++
		}
	}
	return n
}

// coalescer calls fire at most once per interval. A notify when the last
// firing is at least interval ago fires at once; one sooner schedules a
// single firing at the end of the interval, which later notifies join
// (the pending flag). So no notify is lost, and a flood of them costs one
// firing per interval.
type coalescer struct {
	interval time.Duration
	fire     func()

	mu      sync.Mutex
	last    time.Time // of the last firing
	pending bool      // a firing is scheduled
}

func (c *coalescer) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending {
		return
	}
	wait := c.interval - time.Since(c.last)
	if wait <= 0 {
		c.last = time.Now()
		c.fire()
		return
	}
	c.pending = true
	time.AfterFunc(wait, func() {
		c.mu.Lock()
		c.pending = false
		c.last = time.Now()
		c.mu.Unlock()
		c.fire()
	})
}
