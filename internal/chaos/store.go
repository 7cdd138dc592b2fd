package chaos

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Store is the fenced store the replicas' apps write to: it accepts a
// write only with a fencing token at least as high as the highest it has
// seen, and logs every decision. It also plays each replica's app: the
// promote hook makes a replica's app primary with its token (raising the
// fence), the demote hook makes it standby. An app stays primary until its
// demote hook says otherwise, whatever its leaderd does (frozen, killed),
// as a real one would.
type Store struct {
	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	highest int64
	writes  []StoreWrite
	apps    map[string]int64 // replica id -> token of its app while primary
}

// StartStore serves the store on a free loopback port.
func StartStore() (*Store, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Store{ln: ln, apps: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /promote", s.handlePromote)
	mux.HandleFunc("POST /demote", s.handleDemote)
	mux.HandleFunc("POST /write", s.handleWrite)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the store's base URL.
func (s *Store) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops serving, bounded.
func (s *Store) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// Writes is a copy of the decision log.
func (s *Store) Writes() []StoreWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StoreWrite(nil), s.writes...)
}

// handlePromote makes the replica's app primary and raises the fence. A
// token below the fence is refused, so a stale replica's promote hook
// fails, as a real fenced app's would.
func (s *Store) handlePromote(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	token, err := strconv.ParseInt(r.URL.Query().Get("token"), 10, 64)
	if err != nil || token <= 0 || id == "" {
		http.Error(w, "bad token or id", http.StatusBadRequest)
		return
	}
	if !s.decide("promote", id, "", token, 0) {
		http.Error(w, "fenced: a newer primary promoted", http.StatusConflict)
	}
}

// handleDemote makes the replica's app standby.
func (s *Store) handleDemote(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	s.decide("demote", id, "", 0, 0)
}

func (s *Store) handleWrite(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token, err1 := strconv.ParseInt(q.Get("token"), 10, 64)
	value, err2 := strconv.ParseInt(q.Get("value"), 10, 64)
	if err := errors.Join(err1, err2); err != nil || token <= 0 {
		http.Error(w, "bad token or value", http.StatusBadRequest)
		return
	}
	if !s.decide("write", q.Get("id"), q.Get("via"), token, value) {
		http.Error(w, "fenced", http.StatusConflict)
	}
}

// decide makes and logs one decision: a write or a promote is accepted
// only with a token at or above the fence, and then raises it.
func (s *Store) decide(kind, id, via string, token, value int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := kind == "demote" || token >= s.highest
	s.writes = append(s.writes, StoreWrite{At: time.Now(), Kind: kind, Replica: id, Via: via,
		Token: token, Value: value, Accepted: ok, Highest: s.highest})
	switch {
	case kind == "demote":
		delete(s.apps, id)
	case ok:
		s.highest = token
		if kind == "promote" {
			s.apps[id] = token
		}
	}
	return ok
}

// apps is a copy of which replicas' apps are primary, with their tokens.
func (s *Store) primaryApps() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.apps))
	for id, t := range s.apps {
		out[id] = t
	}
	return out
}
