package wire

import "time"

// LogMessage is one line of GET /system/logs, OpenFaaS's shape; the
// stream is NDJSON, one message per line.
type LogMessage struct {
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	Instance  string    `json:"instance"`
	Timestamp time.Time `json:"timestamp"`
	Text      string    `json:"text"`
}
