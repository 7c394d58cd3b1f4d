package mail

import (
	"context"
	"slices"
	"testing"
)

// keys returns n consecutive keys from first.
func keys(first, n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(first + i)
	}
	return out
}

// queued builds a scheduler of four started workers with the given queue.
func queued(steps []step, chunks []chunk) *scheduler {
	s := newScheduler(context.Background(), 4, nil)
	s.workers, s.minChunk = 4, 100
	s.steps, s.chunks = steps, chunks
	return s
}

// TestSchedulerPreparesTheNextFolderBeforeChunksRunOut: chunks go first while there are at
// least as many as workers; with fewer, the next folder is prepared so that its chunks queue
// before a worker runs out of work.
func TestSchedulerPreparesTheNextFolderBeforeChunksRunOut(t *testing.T) {
	fr := &folderRun{chunked: 5}
	g := &group{dest: "Trash"}
	var cs []chunk
	for i := range 5 {
		cs = append(cs, chunk{fr: fr, uids: keys(1+1000*i, 1000)})
	}
	s := queued([]step{{g: g}}, cs)
	for i := range 2 {
		if _, c, _ := s.next(); c == nil {
			t.Fatalf("take %d: no chunk, want a chunk (%d queued for 4 workers)", i, 5-i)
		}
	}
	if st, c, ok := s.next(); c != nil {
		t.Fatalf("third take: a chunk, want the queued folder's step (3 chunks queued for 4 workers)")
	} else if st.g != g {
		t.Fatalf("third take: step of %v, want the queued folder's step", st.g)
	} else if !ok {
		t.Fatalf("third take: ok is false, want work")
	}
}

// TestSchedulerSplitsTailChunks: with no folder left to prepare, a chunk bigger than its share
// of the queue is split, never below minChunk, and the folder counts the extra chunk; a
// folder copied as one chunk is never split.
func TestSchedulerSplitsTailChunks(t *testing.T) {
	fr := &folderRun{chunked: 2, outstanding: 2}
	s := queued(nil, []chunk{{fr: fr, uids: keys(1, 1000)}, {fr: fr, uids: keys(1001, 200)}})
	var got []int
	for range 4 {
		if len(s.chunks) == 0 {
			break
		}
		_, c, ok := s.next()
		if !ok || c == nil {
			t.Fatalf("want a chunk, got %v %v (taken so far %v)", c, ok, got)
		}
		got = append(got, len(c.uids))
	}
	// 1,200 queued for 4 workers: a share of 300, then of 900/4, 675/4 and 506/4 (rounded up).
	if want := []int{300, 225, 169, 127}; !slices.Equal(got, want) {
		t.Errorf("chunk sizes taken %v, want %v", got, want)
	}
	if fr.outstanding != 6 {
		t.Errorf("fr.outstanding = %d, want 6 (2 chunks, split 4 times)", fr.outstanding)
	}
	var all []uint32
	s2 := queued(nil, []chunk{{fr: fr, uids: keys(1, 1000)}})
	for len(s2.chunks) > 0 {
		_, c, _ := s2.next()
		all = append(all, c.uids...)
	}
	if !slices.Equal(all, keys(1, 1000)) {
		t.Errorf("split parts cover %d keys, want 1..1000 in order", len(all))
	}

	whole := &folderRun{chunked: 1, outstanding: 1}
	s3 := queued(nil, []chunk{{fr: whole, uids: keys(1, 1000)}})
	if _, c, _ := s3.next(); len(c.uids) != 1000 {
		t.Errorf("a folder copied as one chunk was split: took %d of 1000 keys", len(c.uids))
	}
}
