package sidecar

import "sync"

// replicaSignals is what the state machine, the member publisher and the
// follower of one replica share beyond the state itself. It is kept beside
// the state, keyed by it, so those three can meet without another field in
// Sidecar or state; one small entry per Sidecar ever made.
type replicaSignals struct {
	// follow lets a promote or demote cut a running leader-change hook
	// short (see runHook).
	follow followGate
	// memberChanged wakes the member publisher after a change of the state
	// (buffered 1, latest wins), so a phase change is published at once
	// rather than at the next refresh tick.
	memberChanged chan struct{}
	// elector hands Run's elector from the member publisher, which is
	// given it, to the follower, which reads the leader's member record
	// (buffered 1, sent once).
	elector chan elector
}

var signalsByState sync.Map // *state -> *replicaSignals

func (st *state) signals() *replicaSignals {
	if v, ok := signalsByState.Load(st); ok {
		return v.(*replicaSignals)
	}
	v, _ := signalsByState.LoadOrStore(st, &replicaSignals{
		memberChanged: make(chan struct{}, 1),
		elector:       make(chan elector, 1),
	})
	return v.(*replicaSignals)
}

// notifyChanged wakes the member publisher: call it after any change of
// the state (role, phase, health...), outside st.mu. It never blocks.
func (st *state) notifyChanged() { wake(st.signals().memberChanged) }
