package election

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// renewer sends a lease's keepalives, one at a time, from the lease's loop.
type renewer interface {
	// keepAliveOnce renews id once, bounded by ctx, as the client's
	// KeepAliveOnce: TTL 0 is rpctypes.ErrLeaseNotFound.
	keepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error)
	// close lets go of whatever the renewals keep open.
	close()
}

// errWrongLease is an answer about another lease than the one renewed.
var errWrongLease = errors.New("election: keepalive answer for another lease")

// keepAliveStream renews over one LeaseKeepAlive stream, opened by the
// first renewal and kept for the next: the client's KeepAliveOnce opens a
// stream per renewal, which costs etcd more than the renewal itself. A
// stream that failed in any way, or whose renewal ran out of time, is
// dropped; the next renewal opens a fresh one.
//
// Only the lease's loop calls it, so it needs no lock.
type keepAliveStream struct {
	leases pb.LeaseClient
	idle   *leaseStream // nil: none open, or the one open is in use
	opened atomic.Int64 // streams opened so far, for tests
}

// leaseStream is one LeaseKeepAlive stream and the cancel that ends it.
type leaseStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	stream pb.Lease_LeaseKeepAliveClient // nil until opened
}

// newKeepAliveStream renews over client's connection, so its TLS and its
// auth token (set by the client's interceptors and credentials) apply.
func newKeepAliveStream(client *clientv3.Client) *keepAliveStream {
	return &keepAliveStream{leases: pb.NewLeaseClient(client.ActiveConnection())}
}

// keepAliveOnce sends one renewal on the open stream, or a new one, and
// waits for its answer. A kept stream can have died since the last renewal
// (a member restarted, a connection reset, a member without a leader ended
// it): its failure earns one more try on a new stream, within the same
// bound, as the client's KeepAliveOnce would have started on one.
func (s *keepAliveStream) keepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	kept := s.idle != nil
	resp, err := s.renewOn(ctx, id)
	if err != nil && kept && ctx.Err() == nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) && !errors.Is(err, errWrongLease) {
		return s.renewOn(ctx, id)
	}
	return resp, err
}

// renewOn renews once on the open stream, or a new one. ctx's end, the
// renewal's bound or Stop, ends the stream whatever call it is in, so
// nothing is left blocked.
func (s *keepAliveStream) renewOn(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	ls := s.idle
	s.idle = nil // handed back only after a clean answer: no stale one can follow
	if ls == nil {
		// Not from ctx: the stream outlives the renewal. A member without
		// a leader refuses to open it, and ends it after three election
		// timeouts without one; a renewal it holds meanwhile waits for a
		// leader and meets its bound.
		sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		ls = &leaseStream{ctx: sctx, cancel: cancel}
	}
	unbind := context.AfterFunc(ctx, ls.cancel)
	resp, err := s.roundTrip(ls, id)
	if bound := unbind(); err != nil || !bound {
		ls.cancel()
		if err != nil {
			return nil, clientv3.ContextError(ctx, err)
		}
		return resp, nil // answered just as ctx ended: the answer stands, the stream does not
	}
	s.idle = ls
	return resp, nil
}

// roundTrip opens ls's stream if need be, sends one request and reads its
// answer.
func (s *keepAliveStream) roundTrip(ls *leaseStream, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	if ls.stream == nil {
		// Waiting for a connection, as the client's own calls do.
		stream, err := s.leases.LeaseKeepAlive(ls.ctx, grpc.WaitForReady(true))
		if err != nil {
			return nil, err
		}
		ls.stream = stream
		s.opened.Add(1)
	}
	err := ls.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// After io.EOF from Send, Recv has the stream's real error.
	resp, err := ls.stream.Recv()
	if err != nil {
		return nil, err
	}
	return judgeKeepAlive(id, resp)
}

// judgeKeepAlive turns the server's answer into the client's: etcd
// answers a keepalive for a lease it does not have with TTL 0, not an
// error.
func judgeKeepAlive(id clientv3.LeaseID, resp *pb.LeaseKeepAliveResponse) (*clientv3.LeaseKeepAliveResponse, error) {
	if clientv3.LeaseID(resp.ID) != id {
		return nil, fmt.Errorf("%w: sent %s, answered %s", errWrongLease, LeaseHex(int64(id)), LeaseHex(resp.ID))
	}
	if resp.TTL <= 0 {
		return nil, rpctypes.ErrLeaseNotFound
	}
	return &clientv3.LeaseKeepAliveResponse{ResponseHeader: resp.GetHeader(), ID: id, TTL: resp.TTL}, nil
}

// close ends the open stream, if any.
func (s *keepAliveStream) close() {
	if s.idle != nil {
		s.idle.cancel()
		s.idle = nil
	}
}
