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

// The autoscaler follows one of OpenFaaS's two contracts. A function with
// none of the Pro labels (type, target, target-proportion) gets CE's rule:
// more than CERate requests per second adds ScaleFactor percent of max.
// With any of them it gets the Pro autoscaler's target per replica.

// CERate is the request rate above which CE's rule adds replicas: the
// gateway's AlertManager rule fires on rate(...[10s]) > 5.
const CERate = 5.0

// ScaleType is the Pro type label (rps, capacity or cpu; rps when only a
// target or proportion is given, as in Pro), or ScaleCE without any.
func (s Spec) ScaleType() string {
	if v, ok := s.Labels[LabelScaleType]; ok {
		return strings.TrimSpace(v)
	}
	_, target := s.Labels[LabelScaleTarget]
	_, prop := s.Labels[LabelScaleProportion]
	if target || prop {
		return ScaleRPS
	}
	return ScaleCE
}

// ScaleTarget is the load per replica the Pro autoscaler aims for (label
// com.openfaas.scale.target, default 50, as in Pro).
func (s Spec) ScaleTarget() int { return max(1, s.labelInt(LabelScaleTarget, 50)) }

// ScaleProportion is the share of the target a replica is filled to
// before another is added (com.openfaas.scale.target-proportion, default
// 0.90, as in Pro).
func (s Spec) ScaleProportion() float64 {
	v, ok := s.Labels[LabelScaleProportion]
	if !ok {
		return 0.9
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(p > 0 && p <= 1) {
		return 0.9
	}
	return p
}

// ScaleFactor is the percentage of max that one firing of CE's rule adds
// (com.openfaas.scale.factor, default 20).
func (s Spec) ScaleFactor() int {
	if n := s.labelInt(LabelScaleFactor, 20); n >= 1 && n <= 100 {
		return n
	}
	return 20
}

// CEStep is how many replicas one firing of CE's rule adds:
// ceil(max * factor / 100), at least one, as the gateway's alert handler
// computes it.
func (s Spec) CEStep() int {
	return max(1, (s.MaxReplicas()*s.ScaleFactor()+99)/100)
}

// validateScaling checks the autoscaling labels, the same on every path.
func (s Spec) validateScaling() error {
	if v, ok := s.Labels[LabelScaleType]; ok {
		switch strings.TrimSpace(v) {
		case ScaleRPS, ScaleCapacity, ScaleCPU:
		default:
			return fmt.Errorf("%w: label %s=%q: want %s, %s or %s", ErrInvalid, LabelScaleType, v, ScaleRPS, ScaleCapacity, ScaleCPU)
		}
	}
	if v, ok := s.Labels[LabelScaleTarget]; ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 1 {
			return fmt.Errorf("%w: label %s=%q is not a positive integer", ErrInvalid, LabelScaleTarget, v)
		}
	}
	if v, ok := s.Labels[LabelScaleProportion]; ok {
		if p, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || !(p > 0 && p <= 1) {
			return fmt.Errorf("%w: label %s=%q is not a number above 0 and at most 1, such as 0.90", ErrInvalid, LabelScaleProportion, v)
		}
	}
	if v, ok := s.Labels[LabelScaleFactor]; ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 1 || n > 100 {
			return fmt.Errorf("%w: label %s=%q is not a percentage from 1 to 100", ErrInvalid, LabelScaleFactor, v)
		}
	}
	return nil
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
