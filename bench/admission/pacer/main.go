// Command pacer sends AdmissionReviews at an exact, even rate over keep-alive TLS connections
// and reports the latency of each, for the admission benchmark (bench/admission/bench.py).
//
// It is the Go twin of paced.py, there to take the client's own scheduling out of the figures:
// the Python client shares the GIL, its garbage collector and an event loop with its timer, so
// every latency it measures carries some of its own. This one keeps a single OS thread for the
// schedule (a precise nanosleep to each due time, not the runtime's millisecond timer) and
// hands each request to the first free of its HTTP/1.1 keep-alive TLS connections, each served
// by one goroutine that writes the request and reads the answer itself (net/http's writer and
// parser, without the Transport's pool and its goroutine hand-offs per request).
//
// Open loop: request i is due at start + i/rate whatever the answers do. Each latency is
// reported twice, as a coordinated-omission-aware tool does: from its due time (what a caller
// on that schedule waits, including any lateness of this client and any wait for a free
// connection) and from the moment the schedule released it (the server's part, plus any wait
// for a free connection, as paced.py times it). The gap between the two is this client's own
// send lag, reported too. Every answer is checked: HTTP 200 and response.allowed as expected, else an error.
//
// Bounded: rate x seconds requests, each with a timeout; standard library only.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	url         string
	bodyFile    string
	caFile      string
	rate        int
	seconds     float64
	connections int
	expect      string
	timeout     time.Duration
}

// outcome is one request: its due time, when the schedule released it, when it ended.
type outcome struct {
	due, sent, done time.Time
	failure         string // "" for a good answer
}

func main() {
	cfg := config{}
	flag.StringVar(&cfg.url, "url", "", "https URL to POST to")
	flag.StringVar(&cfg.bodyFile, "body", "", "file holding the AdmissionReview to send")
	flag.StringVar(&cfg.caFile, "cafile", "", "PEM CA bundle that signed the server's certificate")
	flag.IntVar(&cfg.rate, "rate", 500, "requests per second, evenly spaced")
	flag.Float64Var(&cfg.seconds, "seconds", 10, "seconds of load")
	flag.IntVar(&cfg.connections, "connections", 16, "keep-alive connections, opened first")
	flag.StringVar(&cfg.expect, "expect", "allowed", "the answer every review must get: allowed or denied")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "per-request timeout")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run here (go tool pprof)")
	flag.Parse()
	if *cpuProfile != "" {
		file, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(file)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "pacer:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(cfg, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "pacer:", err)
		os.Exit(2)
	}
}

func run(cfg config, out io.Writer) error {
	if cfg.url == "" || cfg.bodyFile == "" || cfg.caFile == "" {
		return errors.New("-url, -body and -cafile are required")
	}
	if cfg.rate <= 0 || cfg.seconds <= 0 || cfg.connections <= 0 {
		return errors.New("-rate, -seconds and -connections must be positive")
	}
	if cfg.expect != "allowed" && cfg.expect != "denied" {
		return fmt.Errorf("-expect must be allowed or denied, not %q", cfg.expect)
	}
	body, err := os.ReadFile(cfg.bodyFile)
	if err != nil {
		return err
	}
	target, err := newTarget(cfg, body)
	if err != nil {
		return err
	}
	conns, err := target.openConnections(cfg.connections)
	if err != nil {
		return err
	}
	warmDials := target.dials.Load()
	cpuBefore := cpuSeconds()
	start := time.Now()
	outcomes := pace(target, conns, cfg, start)
	finished := time.Now()
	cpu := cpuSeconds() - cpuBefore
	for _, c := range conns {
		c.close()
	}
	report := summarize(cfg, outcomes, start, finished)
	report["connections_opened"] = warmDials
	report["reconnects"] = target.dials.Load() - warmDials
	report["client_cpu_seconds"] = cpu
	report["client_cpu_ms_per_request"] = cpu * 1000 / float64(max(len(outcomes), 1))
	return json.NewEncoder(out).Encode(report)
}

// target is where the reviews go and what they must get back.
type target struct {
	address     string      // host:port
	tls         *tls.Config // the server's CA
	request     []byte      // the whole HTTP/1.1 request, written as net/http writes it
	wantAllowed bool
	timeout     time.Duration
	dials       atomic.Int64 // every connection opened, so a reconnect under load shows
}

func newTarget(cfg config, body []byte) (*target, error) {
	pem, err := os.ReadFile(cfg.caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", cfg.caFile)
	}
	request, err := http.NewRequest(http.MethodPost, cfg.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if request.URL.Scheme != "https" {
		return nil, fmt.Errorf("%s: only https is measured", cfg.url)
	}
	request.Header.Set("Content-Type", "application/json")
	var wire bytes.Buffer
	if err := request.Write(&wire); err != nil {
		return nil, err
	}
	host, port := request.URL.Hostname(), request.URL.Port()
	if port == "" {
		port = "443"
	}
	return &target{
		address:     net.JoinHostPort(host, port),
		tls:         &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12},
		request:     wire.Bytes(),
		wantAllowed: cfg.expect == "allowed",
		timeout:     cfg.timeout,
	}, nil
}

// conn is one keep-alive HTTP/1.1 connection, used by one goroutine at a time: the request
// is written and the answer read on the caller's goroutine, with no hand-off in between.
type conn struct {
	target *target
	tls    *tls.Conn
	reader *bufio.Reader
}

func (t *target) dial() (*conn, error) {
	t.dials.Add(1)
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: t.timeout}, Config: t.tls}
	raw, err := dialer.Dial("tcp", t.address)
	if err != nil {
		return nil, err
	}
	c := raw.(*tls.Conn)
	return &conn{target: t, tls: c, reader: bufio.NewReaderSize(c, 16<<10)}, nil
}

func (c *conn) close() {
	if c.tls != nil {
		c.tls.Close()
		c.tls = nil
	}
}

// exchange sends the review and reads the answer: "" when it is HTTP 200 with the expected
// verdict. A connection that failed is closed and dialled again on its next use.
func (c *conn) exchange() string {
	if c.tls == nil {
		fresh, err := c.target.dial()
		if err != nil {
			return "connect"
		}
		*c = *fresh
	}
	failure := c.roundTrip()
	if failure != "" {
		c.close()
	}
	return failure
}

func (c *conn) roundTrip() string {
	c.tls.SetDeadline(time.Now().Add(c.target.timeout))
	if _, err := c.tls.Write(c.target.request); err != nil {
		return classify(err)
	}
	response, err := http.ReadResponse(c.reader, nil)
	if err != nil {
		return classify(err)
	}
	answer, err := io.ReadAll(response.Body)
	response.Body.Close()
	if err != nil {
		return classify(err)
	}
	if response.Close {
		c.close() // the server said so; the next exchange dials again
	}
	if response.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d", response.StatusCode)
	}
	var review struct {
		Response *struct {
			Allowed *bool `json:"allowed"`
		} `json:"response"`
	}
	if json.Unmarshal(answer, &review) != nil || review.Response == nil || review.Response.Allowed == nil {
		return "not an AdmissionReview"
	}
	if *review.Response.Allowed != c.target.wantAllowed {
		return "unexpected verdict"
	}
	return ""
}

func classify(err error) string {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timeout"
	}
	return "transport"
}

// openConnections dials every connection and sends one review on each before the clock
// starts: no handshake is in any figure, and no server thread waits on a silent connection.
func (t *target) openConnections(count int) ([]*conn, error) {
	conns := make([]*conn, count)
	failures := make([]string, count)
	var group sync.WaitGroup
	for i := range count {
		group.Go(func() {
			c, err := t.dial()
			if err != nil {
				failures[i] = "connect: " + err.Error()
				return
			}
			conns[i] = c
			failures[i] = c.exchange()
		})
	}
	group.Wait()
	for i, failure := range failures {
		if failure != "" {
			for _, c := range conns[:i] {
				c.close()
			}
			return nil, fmt.Errorf("the first reviews failed (%s): is the server up, and the review %s?",
				failure, map[bool]string{true: "allowed", false: "denied"}[t.wantAllowed])
		}
	}
	return conns, nil
}

type job struct {
	index     int
	due, sent time.Time
}

// pace hands request i to the first free connection at start + i/rate, from one locked OS
// thread, and waits for every answer. A request that finds every connection busy waits in
// the queue, and that wait is in both of its figures, as in paced.py.
func pace(t *target, conns []*conn, cfg config, start time.Time) []outcome {
	total := int(float64(cfg.rate) * cfg.seconds)
	interval := time.Second / time.Duration(cfg.rate)
	outcomes := make([]outcome, total)
	queue := make(chan job, total)
	var group sync.WaitGroup
	for _, c := range conns {
		group.Go(func() {
			for j := range queue {
				failure := c.exchange()
				outcomes[j.index] = outcome{due: j.due, sent: j.sent, done: time.Now(), failure: failure}
			}
		})
	}
	runtime.LockOSThread()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		sleepUntil(due)
		queue <- job{index: i, due: due, sent: time.Now()}
	}
	runtime.UnlockOSThread()
	close(queue)
	group.Wait()
	return outcomes
}

// sleepUntil blocks this OS thread in nanosleep: the kernel's high-resolution timer wakes it
// within tens of microseconds, where the runtime's timers (time.Sleep) round up to a millisecond.
func sleepUntil(due time.Time) {
	for {
		wait := time.Until(due)
		if wait <= 0 {
			return
		}
		spec := syscall.NsecToTimespec(int64(wait))
		if err := syscall.Nanosleep(&spec, nil); err == nil {
			return
		}
	}
}

func summarize(cfg config, outcomes []outcome, start, finished time.Time) map[string]any {
	var fromSend, fromDue, lag []float64
	failures := map[string]int{}
	lastSent := start
	for _, o := range outcomes {
		lag = append(lag, ms(o.sent.Sub(o.due)))
		if o.sent.After(lastSent) {
			lastSent = o.sent
		}
		if o.failure != "" {
			failures[o.failure]++
			continue
		}
		fromSend = append(fromSend, ms(o.done.Sub(o.sent)))
		fromDue = append(fromDue, ms(o.done.Sub(o.due)))
	}
	late := 0
	for _, l := range lag {
		if l > 1 {
			late++
		}
	}
	elapsed := finished.Sub(start).Seconds()
	sendSpan := lastSent.Sub(start).Seconds()
	report := map[string]any{
		"client":      "go",
		"rate":        cfg.rate,
		"seconds":     cfg.seconds,
		"connections": cfg.connections,
		"sent":        len(outcomes),
		"requests":    len(fromSend),
		"errors":      len(outcomes) - len(fromSend),
		"error_kinds": failures,
		"rps":         float64(len(fromSend)) / elapsed,
		"send_rate":   float64(max(len(outcomes)-1, 0)) / math.Max(sendSpan, 1e-9),
		"late_sends":  late,
		"wall":        elapsed,
	}
	for name, value := range percentiles(fromSend) {
		report[name] = value // from the send: the keys paced.py has always reported
	}
	report["from_send"] = percentiles(fromSend)
	report["from_schedule"] = percentiles(fromDue)
	report["send_lag"] = percentiles(lag)
	return report
}

// percentiles by nearest rank, as paced.py computes them; NaN-free: 0 when there is nothing.
func percentiles(values []float64) map[string]float64 {
	ordered := slices.Clone(values)
	slices.Sort(ordered)
	at := func(fraction float64) float64 {
		if len(ordered) == 0 {
			return 0
		}
		return ordered[min(len(ordered)-1, int(fraction*float64(len(ordered))))]
	}
	return map[string]float64{
		"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999), "max": at(1),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuSeconds is the user + system time this process has used so far.
func cpuSeconds() float64 {
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) != nil {
		return 0
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
}
