package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// errNewerTenure: a peer has seen a newer tenure than the caller's.
var errNewerTenure = errors.New("app: a peer has seen a newer tenure")

// errNoMajority: too few peers answered for a majority.
var errNoMajority = errors.New("app: no majority of replicas reachable")

// statusOf maps a peer-round error to this replica's answer.
func statusOf(err error) int {
	if errors.Is(err, errNewerTenure) {
		return http.StatusConflict
	}
	return http.StatusServiceUnavailable
}

// peerReply is one peer's answer: code 0 means no answer (err set).
type peerReply struct {
	peer    string
	code    int
	maxSeen int64 // from a 409
	body    []byte
	err     error
}

// callPeers sends the same request to every peer in parallel, each bounded
// by peerTimeout, and waits for all of them.
func (a *App) callPeers(peers []string, pathQuery string, body []byte) []peerReply {
	replies := make([]peerReply, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { replies[i] = a.call(p, pathQuery, body) })
	}
	wg.Wait()
	return replies
}

func (a *App) call(peer, pathQuery string, body []byte) peerReply {
	rep := peerReply{peer: peer}
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peer+pathQuery, bytes.NewReader(body))
	if err != nil {
		rep.err = err
		return rep
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		rep.err = err
		return rep
	}
	defer resp.Body.Close()
	rep.body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		rep.err = err
		return rep
	}
	rep.code = resp.StatusCode
	if rep.code == http.StatusConflict {
		var e apiError
		if json.Unmarshal(rep.body, &e) == nil {
			rep.maxSeen = e.MaxSeen
		}
	}
	return rep
}

// notDelivered reports whether err proves the request never reached the
// peer: the connection was never made (refused, no route, unknown host).
func notDelivered(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial")
}

// replication is the outcome of sending one entry to the peers.
type replication struct {
	accepted  int      // peers that hold the entry (200)
	newest    int64    // the newest tenure a refusing peer reported (409)
	maybeHeld []string // peers that did not refuse: they may hold the entry
}

func (a *App) replicate(e Entry) replication {
	body, _ := json.Marshal(e) // an Entry always marshals
	var res replication
	for _, rep := range a.callPeers(a.peers, "/replicate", body) {
		switch rep.code {
		case http.StatusOK:
			res.accepted++
			res.maybeHeld = append(res.maybeHeld, rep.peer)
		case http.StatusConflict:
			res.newest = max(res.newest, rep.maxSeen)
		default:
			a.logger.Warn("replicate", "peer", rep.peer, "id", e.ID, "code", rep.code, "err", rep.err)
			if !notDelivered(rep.err) {
				res.maybeHeld = append(res.maybeHeld, rep.peer)
			}
		}
	}
	return res
}

// retract asks the peers that may hold e to drop it, and reports whether
// all of them confirmed that they no longer hold it.
func (a *App) retract(e Entry, peers []string) bool {
	q := "/retract?id=" + url.QueryEscape(e.ID) + "&token=" + strconv.FormatInt(e.Token, 10)
	ok := true
	for _, rep := range a.callPeers(peers, q, nil) {
		if rep.code != http.StatusOK {
			a.logger.Warn("retract", "peer", rep.peer, "id", e.ID, "code", rep.code, "err", rep.err)
			ok = false
		}
	}
	return ok
}

// syncPeers fences the peers at token and returns their logs. It needs a
// majority with this replica: enough peers to make every earlier
// acknowledged write (held by a majority) appear in at least one log.
func (a *App) syncPeers(token int64) ([][]Entry, error) {
	var logs [][]Entry
	var newest int64
	for _, rep := range a.callPeers(a.peers, "/sync?token="+strconv.FormatInt(token, 10), nil) {
		switch rep.code {
		case http.StatusOK:
			var entries []Entry
			if err := json.Unmarshal(rep.body, &entries); err != nil {
				a.logger.Warn("sync: bad log", "peer", rep.peer, "err", err)
				continue
			}
			logs = append(logs, entries)
		case http.StatusConflict:
			newest = max(newest, rep.maxSeen)
		default:
			a.logger.Warn("sync", "peer", rep.peer, "code", rep.code, "err", rep.err)
		}
	}
	if newest > token {
		return nil, fmt.Errorf("%w: %d > %d", errNewerTenure, newest, token)
	}
	if need := a.majority() - 1; len(logs) < need {
		return nil, fmt.Errorf("%w: synced %d of %d peers, need %d", errNoMajority, len(logs), len(a.peers), need)
	}
	return logs, nil
}
