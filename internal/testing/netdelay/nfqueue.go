package netdelay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h): the kernel sends the
// userspace end of a queue one NFQNL_MSG_PACKET per queued packet and holds the packet until
// it gets a verdict for its id. A batch verdict settles every packet up to an id at once.
const (
	nfnlSubsysQueue = 3

	nfqnlMsgPacket       = 0
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1 // in a packet: be32 packet id, be16 hw protocol, u8 hook
	nfqaVerdictHdr = 2 // in a verdict: be32 verdict, be32 id

	nfqaCfgCmd      = 1 // u8 command, u8 pad, be16 protocol family
	nfqaCfgParams   = 2 // be32 copy range, u8 copy mode (packed)
	nfqaCfgQueueMax = 3 // be32

	nfqnlCfgCmdBind = 1
	nfqnlCopyMeta   = 1 // the packet's metadata only: the delay needs no payload

	nfAccept = 1

	nlaTypeMask = 0x3fff // an attribute's type without the nested and byte-order flags
)

// queueMaxLen bounds the packets the kernel holds for the queue; beyond it the kernel drops
// them (TCP retransmits). A bulk transfer at 40 ms holds a few thousand ACKs at most.
const queueMaxLen = 1 << 16

// queue is the userspace end of NFQUEUE 0 in the namespace: it accepts each packet the rule
// queued once it has been held for the delay. Packets arrive in id order and all wait the same
// time, so the due ones are always a prefix and one batch verdict releases them.
type queue struct {
	f     *os.File
	rc    syscall.RawConn
	delay atomic.Int64 // nanoseconds each packet is held
	held  chan heldPacket
	stop  chan struct{}
	wg    sync.WaitGroup
	seq   atomic.Uint32
	count atomic.Int64 // packets held so far

	mu  sync.Mutex
	err error // the first failure of the reader or the releaser
}

type heldPacket struct {
	id  uint32
	due time.Time
}

// openQueue binds queue 0 of the current thread's network namespace (the caller runs it inside
// the link's namespace) and starts holding packets.
func openQueue(delay time.Duration) (*queue, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// Room for many notifications while the reader is descheduled (root may exceed rmem_max).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "nfqueue") // non-blocking: the runtime poller serves it
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	q := &queue{f: f, rc: rc, held: make(chan heldPacket, queueMaxLen), stop: make(chan struct{})}
	q.delay.Store(int64(delay))
	cmd := make([]byte, 4)
	cmd[0] = nfqnlCfgCmdBind
	binary.BigEndian.PutUint16(cmd[2:], unix.AF_INET)
	params := make([]byte, 5)
	params[4] = nfqnlCopyMeta
	maxLen := binary.BigEndian.AppendUint32(nil, queueMaxLen)
	if err := q.configure(attr(nfqaCfgCmd, cmd)); err != nil {
		f.Close()
		return nil, fmt.Errorf("bind queue 0: %w", err)
	}
	if err := q.configure(attr(nfqaCfgParams, params), attr(nfqaCfgQueueMax, maxLen)); err != nil {
		f.Close()
		return nil, fmt.Errorf("configure queue 0: %w", err)
	}
	q.wg.Add(2)
	go q.read()
	go q.release()
	return q, nil
}

// configure sends a config message and waits for the kernel's acknowledgement.
func (q *queue) configure(attrs ...[]byte) error {
	seq := q.seq.Add(1)
	if err := q.send(message(nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, attrs...)); err != nil {
		return err
	}
	_ = q.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer q.f.SetReadDeadline(time.Time{})
	buf := make([]byte, 8192)
	for {
		n, err := q.recv(buf)
		if err != nil {
			return fmt.Errorf("read acknowledgement: %w", err)
		}
		acked, err := ackOf(buf[:n], seq)
		if acked {
			return err
		}
	}
}

// ackOf finds the acknowledgement (an NLMSG_ERROR, errno 0 for success) of seq in b.
func ackOf(b []byte, seq uint32) (bool, error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return false, errors.New("truncated netlink message")
		}
		typ, s := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
		if typ == unix.NLMSG_ERROR && s == seq && l >= unix.NLMSG_HDRLEN+4 {
			if errno := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); errno != 0 {
				return true, syscall.Errno(-errno)
			}
			return true, nil
		}
		b = b[align4(l):]
	}
	return false, nil
}

// read takes the kernel's packet notifications and hands each packet's id to the releaser with
// the time it is due.
func (q *queue) read() {
	defer q.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, err := q.recv(buf)
		now := time.Now()
		switch {
		case errors.Is(err, os.ErrClosed):
			return
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were lost; their packets go with the next batch verdict.
			continue
		case err != nil:
			q.fail(fmt.Errorf("read queue: %w", err))
			return
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			q.handle(b[:l], now)
			b = b[align4(l):]
		}
	}
}

// handle queues a packet notification for release, or records an error the kernel reported.
func (q *queue) handle(m []byte, now time.Time) {
	typ := binary.NativeEndian.Uint16(m[4:])
	if typ == unix.NLMSG_ERROR {
		// ENOENT: the packets were gone before their verdict, flushed when the veth pair went
		// down at Close.
		if _, err := ackOf(m, binary.NativeEndian.Uint32(m[8:])); err != nil && !errors.Is(err, unix.ENOENT) {
			q.fail(fmt.Errorf("verdict refused: %w", err))
		}
		return
	}
	if typ != nfnlSubsysQueue<<8|nfqnlMsgPacket {
		return
	}
	for a := m[unix.NLMSG_HDRLEN+4:]; len(a) >= 4; {
		al, at := int(binary.NativeEndian.Uint16(a)), binary.NativeEndian.Uint16(a[2:])&nlaTypeMask
		if al < 4 || al > len(a) {
			return
		}
		if at == nfqaPacketHdr && al >= 8 {
			q.count.Add(1)
			select {
			case q.held <- heldPacket{id: binary.BigEndian.Uint32(a[4:]), due: now.Add(time.Duration(q.delay.Load()))}:
			case <-q.stop:
			}
			return
		}
		a = a[min(align4(al), len(a)):]
	}
}

// release accepts the held packets as they fall due, every due one with a single batch verdict.
func (q *queue) release() {
	defer q.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var next *heldPacket
	for {
		if next == nil {
			select {
			case p := <-q.held:
				next = &p
			case <-q.stop:
				return
			}
		}
		if wait := time.Until(next.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-q.stop:
				return
			}
		}
		last := next.id
		next = nil
	drain:
		for {
			select {
			case p := <-q.held:
				if p.due.After(time.Now()) {
					next = &p
					break drain
				}
				last = p.id
			default:
				break drain
			}
		}
		hdr := binary.BigEndian.AppendUint32(nil, nfAccept)
		hdr = binary.BigEndian.AppendUint32(hdr, last)
		if err := q.send(message(nfqnlMsgVerdictBatch, unix.NLM_F_REQUEST, q.seq.Add(1), attr(nfqaVerdictHdr, hdr))); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			q.fail(fmt.Errorf("send verdict: %w", err))
		}
	}
}

func (q *queue) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
}

// Err is the first failure of the queue, if any.
func (q *queue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// close stops the queue; the kernel unbinds it when the socket closes.
func (q *queue) close() {
	close(q.stop)
	q.f.Close()
	q.wg.Wait()
}

func (q *queue) send(b []byte) error {
	var serr error
	err := q.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

func (q *queue) recv(buf []byte) (int, error) {
	var n int
	var rerr error
	err := q.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// message renders a queue message: the netlink header (host byte order), the nfnetlink header
// naming queue 0, and the attributes.
func message(typ uint16, flags uint16, seq uint32, attrs ...[]byte) []byte {
	l := unix.NLMSG_HDRLEN + 4
	for _, a := range attrs {
		l += len(a)
	}
	b := make([]byte, unix.NLMSG_HDRLEN+4, l)
	binary.NativeEndian.PutUint32(b[0:], uint32(l))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b[16] = unix.AF_UNSPEC
	b[17] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:], 0) // queue number
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

// attr renders a netlink attribute padded to four bytes.
func attr(typ uint16, data []byte) []byte {
	b := make([]byte, align4(4+len(data)))
	binary.NativeEndian.PutUint16(b, uint16(4+len(data)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

func align4(n int) int { return (n + 3) &^ 3 }
