package function

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ReplicaLimit is the most replicas a function may have, on every path:
// scale requests, bounds and the max label.
const ReplicaLimit = 1000

// MinReplicas is ScaleMin, else the label com.openfaas.scale.min, default 1.
// A service always has exactly one.
func (s Spec) MinReplicas() int {
	if s.IsService() {
		return 1
	}
	if s.ScaleMin != nil {
		return *s.ScaleMin
	}
	return s.labelInt(LabelScaleMin, 1)
}

// MaxReplicas is ScaleMax, else the label com.openfaas.scale.max, default 20.
func (s Spec) MaxReplicas() int {
	if s.IsService() {
		return 1
	}
	if s.ScaleMax != nil {
		return *s.ScaleMax
	}
	return s.labelInt(LabelScaleMax, 20)
}

// Autoscaled reports whether the autoscaler moves the replica count: the
// bounds leave it room.
func (s Spec) Autoscaled() bool { return s.MaxReplicas() > s.MinReplicas() }

// DesiredReplicas is the replica count the controller converges to.
func (s Spec) DesiredReplicas() int {
	if s.IsService() {
		return 1
	}
	if s.Replicas > 0 {
		return s.Replicas
	}
	return s.MinReplicas()
}

// ScaleTarget is the load per replica the autoscaler aims for (label
// com.openfaas.scale.target, default 10).
func (s Spec) ScaleTarget() int { return max(1, s.labelInt(LabelScaleTarget, 10)) }

// ScaleType is "capacity" (default) or "rps".
func (s Spec) ScaleType() string {
	if strings.TrimSpace(s.Labels[LabelScaleType]) == ScaleRPS {
		return ScaleRPS
	}
	return ScaleCapacity
}

// ScaleToZero reports whether idle replicas are paused and then deleted.
// Services never are.
func (s Spec) ScaleToZero() bool {
	if s.IsService() {
		return false
	}
	v, _ := strconv.ParseBool(strings.TrimSpace(s.Labels[LabelScaleZero]))
	return v
}

// ZeroDuration is how long a function must be idle before it is paused
// (default 5m).
func (s Spec) ZeroDuration() time.Duration {
	return s.labelDuration(LabelScaleZeroDuration, 5*time.Minute)
}

// DeleteAfter is how long a function stays paused before its replicas are
// deleted (default 30m).
func (s Spec) DeleteAfter() time.Duration { return s.labelDuration(LabelDeleteAfter, 30*time.Minute) }

// DownWindow is how long the autoscaler waits before scaling down
// (default 60s).
func (s Spec) DownWindow() time.Duration { return s.labelDuration(LabelScaleDownWindow, time.Minute) }

func (s Spec) labelDuration(key string, def time.Duration) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(s.Labels[key]))
	if err != nil || d < 0 {
		return def
	}
	return d
}

func (s Spec) labelInt(key string, def int) int {
	v, ok := s.Labels[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return def
	}
	return n
}

// ValidateBounds checks the replica bounds, from labels or overrides:
// 0 <= min <= max <= ReplicaLimit.
func (s Spec) ValidateBounds() error {
	lo, hi := s.MinReplicas(), s.MaxReplicas()
	switch {
	case s.ScaleMin != nil && *s.ScaleMin < 0, s.ScaleMax != nil && *s.ScaleMax < 0:
		return fmt.Errorf("%w: min and max replicas must not be negative", ErrInvalid)
	case hi > ReplicaLimit:
		return fmt.Errorf("%w: max replicas %d is above the limit of %d", ErrInvalid, hi, ReplicaLimit)
	case hi < lo:
		return fmt.Errorf("%w: max replicas %d is below min replicas %d", ErrInvalid, hi, lo)
	}
	return nil
}
