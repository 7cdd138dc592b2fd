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

// Store is the fenced store the replicas' app would write to: it accepts a
// write only with a fencing token at least as high as the highest it has
// seen, and logs every decision. The promote hook raises its fence with the
// new primary's token, as an app's promote would.
type Store struct {
	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	highest int64
	writes  []StoreWrite
	fences  int // promote calls seen
}

// StartStore serves the store on a free loopback port.
func StartStore() (*Store, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Store{ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /promote", s.handlePromote)
	mux.HandleFunc("POST /demote", func(w http.ResponseWriter, r *http.Request) {})
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

// handlePromote raises the fence. A token below the fence is refused, so a
// stale replica's promote hook fails, as a real fenced app's would.
func (s *Store) handlePromote(w http.ResponseWriter, r *http.Request) {
	token, err := strconv.ParseInt(r.URL.Query().Get("token"), 10, 64)
	if err != nil || token <= 0 {
		http.Error(w, "bad token", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fences++
	if token < s.highest {
		http.Error(w, "fenced: a newer primary promoted", http.StatusConflict)
		return
	}
	s.highest = token
}

func (s *Store) handleWrite(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token, err1 := strconv.ParseInt(q.Get("token"), 10, 64)
	value, err2 := strconv.ParseInt(q.Get("value"), 10, 64)
	if err := errors.Join(err1, err2); err != nil || token <= 0 {
		http.Error(w, "bad token or value", http.StatusBadRequest)
		return
	}
	ok := s.write(token, value)
	if !ok {
		http.Error(w, "fenced", http.StatusConflict)
	}
}

// write decides and logs one write.
func (s *Store) write(token, value int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := token >= s.highest
	s.writes = append(s.writes, StoreWrite{At: time.Now(), Token: token, Value: value, Accepted: ok, Highest: s.highest})
	if ok {
		s.highest = token
	}
	return ok
}
