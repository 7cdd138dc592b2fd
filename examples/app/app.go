package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Roles, as set by the leaderd hooks.
const (
	rolePrimary = "primary"
	roleStandby = "standby"
)

const (
	// peerTimeout bounds every call to a peer, so a paused or cut-off peer
	// costs a write or a promote at most this long (the promote hook has
	// leaderd's --promote-timeout, 5s in the compose file).
	peerTimeout = time.Second
	// maxBody bounds request bodies: entries are small demo strings.
	maxBody = 1 << 20
)

// Entry is one write, stamped with the fencing token of the tenure that
// made it.
type Entry struct {
	ID    string    `json:"id"`
	Token int64     `json:"token"`
	Data  string    `json:"data"`
	At    time.Time `json:"at"`
}

// Role is the body of GET /role (and of /promote and /demote).
type Role struct {
	Role     string `json:"role"`
	Token    int64  `json:"token"`    // this tenure's fencing token while primary, else 0
	MaxSeen  int64  `json:"max_seen"` // the newest tenure this replica has seen
	Promotes int    `json:"promotes"` // promote hooks that succeeded
	Demotes  int    `json:"demotes"`  // demote hooks, start-up included
}

// apiError is the JSON body of every error answer. MaxSeen lets a primary
// learn from a peer's 409 which newer tenure fenced it.
type apiError struct {
	Error   string `json:"error"`
	MaxSeen int64  `json:"max_seen"`
}

// App is one replica. Its invariants:
//   - a replica accepts an entry (replicate, or its own write) only if the
//     entry's token is >= maxSeen, and raises maxSeen to it;
//   - a primary acknowledges a write (200) only when a majority of the
//     replicas hold it, and its own log holds exactly the writes it
//     acknowledged plus what it merged at promote;
//   - a new primary first fences a majority at its token (POST /sync) and
//     merges their logs, so every write acknowledged by an earlier tenure
//     (held by a majority) reaches it, and no earlier tenure can get another
//     write acknowledged afterwards.
type App struct {
	id     string
	peers  []string // base URLs of the other replicas
	client *http.Client
	logger *slog.Logger
	mux    *http.ServeMux

	// writeMu serialises client writes: one replication round at a time
	// keeps the reasoning (and the log order) simple.
	writeMu sync.Mutex

	mu       sync.Mutex
	role     string
	token    int64
	maxSeen  int64
	entries  []Entry
	byID     map[string]int // entry id -> index in entries
	promotes int
	demotes  int
}

// New returns a standby replica with an empty log.
func New(id string, peers []string, logger *slog.Logger) *App {
	a := &App{
		id:     id,
		peers:  peers,
		client: &http.Client{Timeout: peerTimeout},
		logger: logger,
		mux:    http.NewServeMux(),
		role:   roleStandby,
		byID:   map[string]int{},
	}
	a.mux.HandleFunc("POST /promote", a.handlePromote)
	a.mux.HandleFunc("POST /demote", a.handleDemote)
	a.mux.HandleFunc("POST /write", a.handleWrite)
	a.mux.HandleFunc("GET /log", a.handleLog)
	a.mux.HandleFunc("GET /role", a.handleRole)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("POST /replicate", a.handleReplicate)
	a.mux.HandleFunc("POST /retract", a.handleRetract)
	a.mux.HandleFunc("POST /sync", a.handleSync)
	return a
}

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// majority is the number of replicas (this one included) that must hold an
// entry before it is acknowledged: 2 of 3.
func (a *App) majority() int { return (1+len(a.peers))/2 + 1 }

// handlePromote makes this replica primary for the tenure ?token=T. It
// fences itself and a majority of the replicas at T, merges their logs, and
// only then serves writes. A non-200 answer makes the promote hook fail,
// and leaderd demotes, resigns and campaigns again.
func (a *App) handlePromote(w http.ResponseWriter, r *http.Request) {
	token, err := tokenParam(r)
	if err != nil || token <= 0 {
		a.fail(w, http.StatusBadRequest, "promote needs ?token=<fencing token> > 0")
		return
	}
	a.mu.Lock()
	if token < a.maxSeen {
		a.mu.Unlock()
		a.fail(w, http.StatusConflict, "stale promote: token %d is older than tenure %d", token, a.maxSeen)
		return
	}
	a.maxSeen = token // from now on this replica refuses older tenures' entries
	a.mu.Unlock()

	logs, err := a.syncPeers(token)
	if err != nil {
		a.logger.Warn("promote failed", "token", token, "err", err)
		a.fail(w, statusOf(err), "promote %d: %v", token, err)
		return
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, log := range logs {
		for _, e := range log {
			a.mergeLocked(e)
		}
	}
	a.sortLocked()
	if a.maxSeen != token {
		a.failLocked(w, http.StatusConflict, "stale promote: tenure %d began during promote %d", a.maxSeen, token)
		return
	}
	a.role, a.token = rolePrimary, token
	a.promotes++
	a.logger.Info("promoted", "token", token, "entries", len(a.entries))
	writeJSON(w, http.StatusOK, a.roleLocked())
}

// handleDemote makes this replica a standby. Always safe, so always 200.
// The token (the tenure that ends) is only logged; it is empty at start-up.
func (a *App) handleDemote(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.logger.Info("demoted", "was", a.role, "token", r.URL.Query().Get("token"))
	a.role, a.token = roleStandby, 0
	a.demotes++
	writeJSON(w, http.StatusOK, a.roleLocked())
}

// handleWrite stores body under ?id=X if this replica is primary and a
// majority accepts the entry. Answers: 200 written (the entry); 409 refused
// by fencing, not written anywhere; 503 not primary, or no majority (the
// message says whether the outcome is unknown); 400 bad request. Writing an
// id that this primary already acknowledged answers 200 again (retries).
func (a *App) handleWrite(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		a.fail(w, http.StatusBadRequest, "write needs ?id=")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		a.fail(w, http.StatusBadRequest, "read body: %v", err)
		return
	}

	a.writeMu.Lock()
	defer a.writeMu.Unlock()

	a.mu.Lock()
	role, token, maxSeen := a.role, a.token, a.maxSeen
	i, dup := a.byID[id]
	var prev Entry
	if dup {
		prev = a.entries[i]
	}
	a.mu.Unlock()
	switch {
	case role != rolePrimary:
		a.fail(w, http.StatusServiceUnavailable, "not primary")
		return
	case token < maxSeen:
		a.fail(w, http.StatusConflict, "stale fencing token: tenure %d has seen tenure %d", token, maxSeen)
		return
	case dup:
		writeJSON(w, http.StatusOK, prev)
		return
	}

	e := Entry{ID: id, Token: token, Data: string(data), At: time.Now().UTC()}
	res := a.replicate(e)
	if res.newest > token {
		// A peer has seen a newer tenure: this primary is stale.
		a.raiseMaxSeen(res.newest)
		if a.retract(e, res.maybeHeld) {
			a.fail(w, http.StatusConflict, "stale fencing token: tenure %d, a replica has seen tenure %d; not written", token, res.newest)
		} else {
			a.fail(w, http.StatusServiceUnavailable, "stale fencing token: tenure %d, a replica has seen tenure %d; outcome unknown (a replica may hold the write)", token, res.newest)
		}
		return
	}
	if held := 1 + res.accepted; held < a.majority() {
		if a.retract(e, res.maybeHeld) {
			a.fail(w, http.StatusServiceUnavailable, "no majority: %d of %d replicas hold the write; not written", held, 1+len(a.peers))
		} else {
			a.fail(w, http.StatusServiceUnavailable, "no majority: %d of %d replicas acknowledged; outcome unknown", held, 1+len(a.peers))
		}
		return
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxSeen != token {
		// A newer primary fenced (and perhaps copied) this replica while
		// the entry was in flight, without the entry: do not claim it.
		a.failLocked(w, http.StatusServiceUnavailable, "tenure %d began during the write; outcome unknown", a.maxSeen)
		return
	}
	a.mergeLocked(e)
	writeJSON(w, http.StatusOK, e)
}

func (a *App) handleLog(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	writeJSON(w, http.StatusOK, append([]Entry{}, a.entries...))
}

func (a *App) handleRole(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	writeJSON(w, http.StatusOK, a.roleLocked())
}

// handleReplicate accepts an entry from a primary unless this replica has
// seen a newer tenure: that refusal (409) is the fencing.
func (a *App) handleReplicate(w http.ResponseWriter, r *http.Request) {
	var e Entry
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&e); err != nil || e.ID == "" || e.Token <= 0 {
		a.fail(w, http.StatusBadRequest, "replicate needs an entry with an id and a token > 0")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Token < a.maxSeen {
		a.failLocked(w, http.StatusConflict, "stale fencing token %d: seen tenure %d", e.Token, a.maxSeen)
		return
	}
	a.maxSeen = e.Token
	a.mergeLocked(e)
	writeJSON(w, http.StatusOK, e)
}

// handleRetract drops an entry the primary did not acknowledge. It refuses
// (409) once a newer tenure has fenced this replica, since that tenure's
// promote may already have copied the entry: the primary must then report
// the write's outcome as unknown rather than refused.
func (a *App) handleRetract(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	token, err := tokenParam(r)
	if id == "" || err != nil {
		a.fail(w, http.StatusBadRequest, "retract needs ?id= and ?token=")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.byID[id]
	if !ok || a.entries[i].Token != token {
		writeJSON(w, http.StatusOK, map[string]bool{"held": false})
		return
	}
	if a.maxSeen > token {
		a.failLocked(w, http.StatusConflict, "tenure %d may have copied entry %q", a.maxSeen, id)
		return
	}
	a.entries = append(a.entries[:i], a.entries[i+1:]...)
	a.reindexLocked()
	writeJSON(w, http.StatusOK, map[string]bool{"held": true})
}

// handleSync is a new primary's fence: raise maxSeen to ?token=T and return
// the log, atomically, so every entry accepted before is in the answer and
// every older-tenure entry after is refused.
func (a *App) handleSync(w http.ResponseWriter, r *http.Request) {
	token, err := tokenParam(r)
	if err != nil || token <= 0 {
		a.fail(w, http.StatusBadRequest, "sync needs ?token= > 0")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if token < a.maxSeen {
		a.failLocked(w, http.StatusConflict, "stale sync %d: seen tenure %d", token, a.maxSeen)
		return
	}
	a.maxSeen = token
	writeJSON(w, http.StatusOK, append([]Entry{}, a.entries...))
}

func (a *App) raiseMaxSeen(t int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.maxSeen = max(a.maxSeen, t)
}

// mergeLocked adds e, or replaces an entry with the same id and an older
// token (a later tenure rewrote an id whose first write was not
// acknowledged).
func (a *App) mergeLocked(e Entry) {
	a.maxSeen = max(a.maxSeen, e.Token)
	if i, ok := a.byID[e.ID]; ok {
		if e.Token > a.entries[i].Token {
			a.entries[i] = e
		}
		return
	}
	a.byID[e.ID] = len(a.entries)
	a.entries = append(a.entries, e)
}

// sortLocked orders the log by tenure, then time, after a merge.
func (a *App) sortLocked() {
	sort.SliceStable(a.entries, func(i, j int) bool {
		x, y := a.entries[i], a.entries[j]
		if x.Token != y.Token {
			return x.Token < y.Token
		}
		return x.At.Before(y.At)
	})
	a.reindexLocked()
}

func (a *App) reindexLocked() {
	clear(a.byID)
	for i, e := range a.entries {
		a.byID[e.ID] = i
	}
}

func (a *App) roleLocked() Role {
	return Role{Role: a.role, Token: a.token, MaxSeen: a.maxSeen, Promotes: a.promotes, Demotes: a.demotes}
}

func (a *App) fail(w http.ResponseWriter, code int, format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLocked(w, code, format, args...)
}

func (a *App) failLocked(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...), MaxSeen: a.maxSeen})
}

func tokenParam(r *http.Request) (int64, error) {
	s := r.URL.Query().Get("token")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
