package election

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/leaderd/leaderd/role"
)

// Fuzz targets for every value leaderd reads from etcd: candidate keys,
// member records, control requests and tenure records. Any host with etcd
// access can write these keys, so each decoder must take any bytes without
// panicking, ignore what is not one of leaderd's records, and give back
// exactly what leaderd wrote. `make fuzz` (scripts/fuzz.sh) runs them with
// -fuzz; `go test` runs the seeds.

var fuzzStore = NewStore(nil, "/leaderd", "e")

// hostileValues are the seeds every decoder gets: empty, not JSON, JSON of
// the wrong shape, and leaderd-shaped JSON with hostile values.
var hostileValues = [][]byte{
	nil,
	[]byte(""),
	[]byte("null"),
	[]byte("{}"),
	[]byte("[]"),
	[]byte(`"a string"`),
	[]byte("12345"),
	[]byte("\x00\xff\xfe garbage \x80"),
	[]byte("{"),
	[]byte(`{"id":`),
	[]byte(`{"id":42,"addr":[],"since":"yesterday"}`),
	[]byte(`{"id":"","addr":"","since":"0001-01-01T00:00:00Z"}`),
	[]byte(`{"id":"a\nb","addr":"x\u0000y"}`),
	[]byte(`{"id":"` + strings.Repeat("x", 4096) + `"}`),
	[]byte(`{"fencing_token":-1,"from":"a","to":"b","expires":"9999-12-31T23:59:59Z"}`),
	[]byte(`{"fencing_token":9223372036854775807,"from":"a","requested":"2026-01-01T00:00:00Z"}`),
	[]byte(`{"fencing_token":1e30}`),
	[]byte(`{"fencing_token":"7"}`),
	[]byte(`{"role":"primary","phase":"primary","healthy":"yes"}`),
	[]byte(`{"id":"r1","role":"primary","phase":"primary","fencing_token":-5,"lease_id":99}`),
	[]byte(`{"start":"2026-01-01T00:00:00Z","end":"2025-01-01T00:00:00Z","end_reason":"` + strings.Repeat("\n", 64) + `"}`),
	[]byte(`{"id":"r1"} trailing`),
	bytes.Repeat([]byte("["), 10000),
}

// jsonString is s as it comes back from a JSON round trip: invalid UTF-8
// is replaced, which is no loss for the ids and addresses leaderd writes.
func jsonString(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// fuzzTime is a time that JSON round-trips (years 1677-2262), in UTC.
func fuzzTime(n int64) time.Time { return time.Unix(0, n).UTC() }

// FuzzCandidate: a key under the candidates prefix is a candidate exactly
// when campaigns count it (on a lease, named by that lease in hex, right
// under the prefix: not a nested deployment's), so the
// leader status shows is the key campaigns wait for; its value is shown
// as leaderd wrote it, or raw when another tool (etcdctl elect) wrote it.
func FuzzCandidate(f *testing.F) {
	pfx := fuzzStore.CandidatesPrefix()
	good, _ := json.Marshal(CandidateValue{ID: "r1", Addr: "10.0.0.1:5432", Since: fuzzTime(1e18)})
	f.Add(pfx+"694d", good, int64(0x694d), int64(7))
	f.Add(pfx+"694d", good, int64(0), int64(7))             // no lease
	f.Add(pfx+"694d", good, int64(0x694e), int64(7))        // a foreign lease
	f.Add(pfx+"-694d", good, int64(-0x694d), int64(-1))     // negative lease and revision
	f.Add(pfx+"nested/694d", good, int64(0x694d), int64(1)) // a nested prefix
	f.Add("", good, int64(1), int64(1))
	for _, v := range hostileValues {
		f.Add(pfx+"1", v, int64(1), int64(3))
	}
	f.Fuzz(func(t *testing.T, key string, value []byte, lease, createRev int64) {
		kv := &mvccpb.KeyValue{Key: []byte(key), Value: value, Lease: lease, CreateRevision: createRev}
		c, ok := fuzzStore.decodeCandidate(kv)
		if want := lease != 0 && key == pfx+LeaseHex(lease); ok != want {
			t.Fatalf("key %q on lease %x: candidate = %v, want %v", key, lease, ok, want)
		}
		if ok != fuzzStore.isCandidateKey(kv) {
			t.Fatalf("decodeCandidate and isCandidateKey disagree on key %q lease %x", key, lease)
		}
		if !ok {
			if c != (Candidate{}) {
				t.Fatalf("ignored key %q yielded %+v", key, c)
			}
			return
		}
		if c.Key != key || c.LeaseID != lease || c.FencingToken() != createRev {
			t.Fatalf("candidate %+v does not carry key %q, lease %x, revision %d", c, key, lease, createRev)
		}
		var v CandidateValue
		if json.Unmarshal(value, &v) == nil {
			if v.ID == "" {
				v = CandidateValue{} // no id: shown with an empty id and nothing else
			}
			if c.ID != v.ID || c.Addr != v.Addr || !c.Since.Equal(v.Since) {
				t.Fatalf("value %q decoded as %+v, want %+v", value, c.CandidateValue, v)
			}
		} else if c.ID != string(value) || c.Addr != "" || !c.Since.IsZero() {
			t.Fatalf("foreign value %q: candidate %+v, want the raw value as the id and nothing else", value, c.CandidateValue)
		}

		// A value leaderd writes round-trips, whatever its fields hold.
		want := CandidateValue{ID: jsonString(key), Addr: jsonString(string(value)), Since: fuzzTime(createRev)}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		own := int64(0x694d)
		rt, ok := fuzzStore.decodeCandidate(&mvccpb.KeyValue{Key: []byte(pfx + LeaseHex(own)), Value: b, Lease: own, CreateRevision: 1})
		if !ok || rt.ID != want.ID || rt.Addr != want.Addr || !rt.Since.Equal(want.Since) {
			t.Fatalf("round trip of %+v gave %+v (candidate %v)", want, rt.CandidateValue, ok)
		}
	})
}

// FuzzMember: a member record is one of leaderd's only if its value is a
// JSON object and its key names an id (not the prefix itself); its id is
// the key's (a value cannot claim another replica's id), and the lease
// fields come from etcd, never the value.
func FuzzMember(f *testing.F) {
	good, _ := json.Marshal(Member{ID: "r1", Role: "primary", Phase: "primary", Healthy: true, Since: fuzzTime(1e18), Version: "v1", Addr: "a:1", FencingToken: 12})
	f.Add("r1", good, int64(0x10))
	f.Add("r2", good, int64(0)) // no lease; the value claims r1
	f.Add("", good, int64(1))
	f.Add("a/b", good, int64(1))
	f.Add("r1\n", good, int64(-1))
	for _, v := range hostileValues {
		f.Add("r1", v, int64(1))
	}
	f.Fuzz(func(t *testing.T, id string, value []byte, lease int64) {
		if decodeMember(fuzzStore.MembersPrefix(), nil) != nil {
			t.Fatal("no key decoded as a member")
		}
		key := fuzzStore.MembersPrefix() + id
		m := decodeMember(fuzzStore.MembersPrefix(), &mvccpb.KeyValue{Key: []byte(key), Value: value, Lease: lease})
		var v Member
		if json.Unmarshal(value, &v) != nil || id == "" || !bytes.HasPrefix(bytes.TrimLeft(value, " \t\r\n"), []byte("{")) {
			if m != nil {
				t.Fatalf("value %q is not a record, decoded as %+v", value, *m)
			}
			return
		}
		if m == nil {
			t.Fatalf("record %q was ignored", value)
		}
		if m.ID != id {
			t.Fatalf("key %q: member id %q, want the key's %q", key, m.ID, id)
		}
		if m.LeaseID != lease || m.LeaseSeconds != 0 {
			t.Fatalf("lease fields %d/%d, want %d/0 from etcd, not the value", m.LeaseID, m.LeaseSeconds, lease)
		}
		if m.Role != v.Role || m.Phase != v.Phase || m.Healthy != v.Healthy || m.FencingToken != v.FencingToken || !m.Since.Equal(v.Since) {
			t.Fatalf("value %q decoded as %+v", value, *m)
		}

		// A record leaderd publishes round-trips.
		want := Member{ID: "m" + jsonString(id), Role: "primary", Phase: role.Phase(jsonString(string(value))), Healthy: lease%2 == 0,
			Since: fuzzTime(lease), Version: "v", Addr: jsonString(id), FencingToken: lease}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		rt := decodeMember(fuzzStore.MembersPrefix(), &mvccpb.KeyValue{Key: []byte(fuzzStore.MembersPrefix() + want.ID), Value: b, Lease: 3})
		want.LeaseID = 3
		if rt == nil || !rt.Since.Equal(want.Since) {
			t.Fatalf("round trip of %+v gave %v", want, rt)
		}
		rt.Since = want.Since
		if *rt != want {
			t.Fatalf("round trip of %+v gave %+v", want, *rt)
		}
	})
}

// FuzzControlRequest: a resign or switchover request is read only from a
// JSON request naming a tenure (from); a switchover needs a target and a
// resign never has one, so
// the request read from a key is always cleared from that same key
// (ClearRequest picks the key by To). The key's revision, not the value,
// guards the clear.
func FuzzControlRequest(f *testing.F) {
	good, _ := json.Marshal(Request{From: "r1", FencingToken: 7, To: "r2", Requested: fuzzTime(1e18), Expires: fuzzTime(1e18 + 1e10)})
	f.Add(true, good, int64(5))
	f.Add(false, good, int64(5)) // a resign written with a target
	f.Add(true, []byte(`{"from":"r1","fencing_token":7}`), int64(5))
	for _, v := range hostileValues {
		f.Add(true, v, int64(2))
		f.Add(false, v, int64(-2))
	}
	f.Fuzz(func(t *testing.T, switchover bool, value []byte, modRev int64) {
		name := controlResign
		if switchover {
			name = controlSwitchover
		}
		if parseRequest(name, nil) != nil {
			t.Fatal("no key parsed as a request")
		}
		r := parseRequest(name, &mvccpb.KeyValue{Key: []byte(fuzzStore.ControlPrefix() + name), Value: value, ModRevision: modRev})
		var v Request
		if json.Unmarshal(value, &v) != nil || v.From == "" || (switchover && v.To == "") {
			if r != nil {
				t.Fatalf("%s value %q is not a request, parsed as %+v", name, value, *r)
			}
			if r.Live(time.Now()) {
				t.Fatal("a nil request is live")
			}
			return
		}
		if r == nil {
			t.Fatalf("%s request %q was ignored", name, value)
		}
		if (r.To != "") != switchover {
			t.Fatalf("%s request %+v would be cleared from the other key", name, *r)
		}
		if r.Revision != modRev {
			t.Fatalf("revision %d, want the key's %d", r.Revision, modRev)
		}
		if r.From != v.From || r.FencingToken != v.FencingToken || !r.Expires.Equal(v.Expires) {
			t.Fatalf("value %q parsed as %+v", value, *r)
		}

		// A request leaderd stores round-trips under its own key.
		want := Request{From: "r" + jsonString(string(value)), FencingToken: modRev, To: "r2",
			Requested: fuzzTime(modRev), Expires: fuzzTime(modRev / 2)}
		if !switchover {
			want.To = ""
		}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		rt := parseRequest(name, &mvccpb.KeyValue{Value: b, ModRevision: 9})
		if rt == nil || rt.From != want.From || rt.FencingToken != want.FencingToken || rt.To != want.To ||
			!rt.Requested.Equal(want.Requested) || !rt.Expires.Equal(want.Expires) || rt.Revision != 9 {
			t.Fatalf("round trip of %+v gave %v", want, rt)
		}
	})
}

// FuzzTenureRecord: the history key, not the value, gives the fencing
// token (it is what sorts); a value another tool wrote is shown raw as the
// id; a record leaderd writes round-trips, open or closed.
func FuzzTenureRecord(f *testing.F) {
	pfx := fuzzStore.HistoryPrefix()
	good, _ := json.Marshal(TenureRecord{ID: "r1", FencingToken: 12, Start: fuzzTime(1e18), End: fuzzTime(1e18 + 1e9), EndReason: "resigned"})
	open, _ := json.Marshal(TenureRecord{ID: "r1", FencingToken: 12, Start: fuzzTime(1e18)})
	f.Add("00000000000000000012", good)
	f.Add("00000000000000000012", open)
	f.Add("00000000000000000013", good) // the key and the value disagree
	f.Add("-0000000000000000005", good)
	f.Add("99999999999999999999", good) // out of range
	f.Add("not-a-token", good)
	f.Add("", good)
	for _, v := range hostileValues {
		f.Add("00000000000000000001", v)
	}
	f.Fuzz(func(t *testing.T, suffix string, value []byte) {
		rec := decodeTenure(pfx, []byte(pfx+suffix), value)
		var v TenureRecord
		valid := json.Unmarshal(value, &v) == nil
		token, keyErr := strconv.ParseInt(suffix, 10, 64)
		switch {
		case keyErr == nil && rec.FencingToken != token:
			t.Fatalf("key %q: token %d, want the key's", suffix, rec.FencingToken)
		case keyErr != nil && valid && rec.FencingToken != v.FencingToken:
			t.Fatalf("key %q without a token: token %d, want the value's %d", suffix, rec.FencingToken, v.FencingToken)
		}
		if !valid {
			if rec.ID != string(value) || !rec.Start.IsZero() || !rec.End.IsZero() || rec.EndReason != "" {
				t.Fatalf("foreign value %q: record %+v, want the raw value as the id and nothing else", value, rec)
			}
			return
		}
		if rec.ID != v.ID || rec.EndReason != v.EndReason || !rec.Start.Equal(v.Start) || !rec.End.Equal(v.End) || rec.Open() != v.Open() {
			t.Fatalf("value %q decoded as %+v, want %+v", value, rec, v)
		}

		// A record leaderd writes round-trips under its key.
		for _, closed := range []bool{false, true} {
			want := TenureRecord{ID: jsonString(suffix), FencingToken: max(1, token&(1<<62-1)), Start: fuzzTime(token)}
			if closed {
				want.End, want.EndReason = fuzzTime(token/2), role.Reason(jsonString(string(value)))
			}
			b, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			key := fuzzStore.historyKey(want.FencingToken)
			rt := decodeTenure(pfx, []byte(key), b)
			if rt.ID != want.ID || rt.FencingToken != want.FencingToken || !rt.Start.Equal(want.Start) ||
				!rt.End.Equal(want.End) || rt.EndReason != want.EndReason || rt.Open() != !closed {
				t.Fatalf("round trip of %+v under %q gave %+v", want, key, rt)
			}
		}
	})
}
