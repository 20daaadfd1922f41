package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// deleteBridge deletes the bridge device name, if there is one. It refuses
// to delete a device that is not a bridge, so that a mistyped Config cannot
// take down the host's uplink.
func deleteBridge(name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", name, "bridge")); err != nil {
		return fmt.Errorf("delete bridge %s: not a bridge: %w", name, err)
	}
	if err := deleteLink(name); err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// deleteLink sends RTM_DELLINK for the link called name over rtnetlink (a
// dependency-free "ip link del"). A link that is already gone is fine.
func deleteLink(name string) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink: %w", err)
	}

	const seq = 1
	attrLen := unix.SizeofRtAttr + len(name) + 1 // NUL-terminated
	msg := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg+align4(attrLen))
	ne := binary.NativeEndian
	// struct nlmsghdr
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.RTM_DELLINK)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(msg[8:], seq)
	// struct ifinfomsg stays zero: family AF_UNSPEC, index 0 (by name).
	// struct rtattr IFLA_IFNAME
	a := msg[unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg:]
	ne.PutUint16(a[0:], uint16(attrLen))
	ne.PutUint16(a[2:], unix.IFLA_IFNAME)
	copy(a[unix.SizeofRtAttr:], name)

	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(ne.Uint32(b[0:]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return errors.New("netlink: malformed reply")
			}
			if ne.Uint16(b[4:]) == unix.NLMSG_ERROR && ne.Uint32(b[8:]) == seq && l >= unix.NLMSG_HDRLEN+4 {
				// struct nlmsgerr: a negative errno, 0 for the ack.
				switch errno := -int32(ne.Uint32(b[unix.NLMSG_HDRLEN:])); {
				case errno == 0, unix.Errno(errno) == unix.ENODEV:
					return nil
				default:
					return fmt.Errorf("netlink: %w", unix.Errno(errno))
				}
			}
			b = b[min(align4(l), len(b)):]
		}
	}
}

func align4(n int) int { return (n + 3) &^ 3 }
