// psa-bench times the API server's own Pod Security Admission checks on the pods that mamori's
// engine benchmark (bench/engine) judges, so both figures come from one run on one machine.
//
// Input: a JSON file written by bench/engine: {"cases": [{"name": ..., "object": {...}}]},
// each object a Pod or a workload with a pod template. For each case and each level it prints
// one JSON line: the PSA verdict and nanoseconds per evaluation (min and median over repeats):
//
//   - evaluate: policy.Evaluator.EvaluatePod + AggregateCheckResults on the typed pod, which is
//     what the API server pays per admission (the object is already decoded by then);
//   - decode+evaluate: the same after decoding the object's JSON into its typed struct with
//     sigs.k8s.io/json, the API server's own decoder, for comparison with a webhook that
//     receives JSON.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	kjson "sigs.k8s.io/json"
)

type benchCase struct {
	Name   string          `json:"name"`
	Object json.RawMessage `json:"object"`
}

type input struct {
	Cases []benchCase `json:"cases"`
}

type timing struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
}

type result struct {
	Case           string   `json:"case"`
	Level          string   `json:"level"`
	Allowed        bool     `json:"allowed"`
	Forbidden      []string `json:"forbidden"`
	Evaluate       timing   `json:"evaluate_ns"`
	DecodeEvaluate timing   `json:"decode_evaluate_ns"`
}

// sink keeps the compiler from proving the timed work unused.
var sink int

func main() {
	casesPath := flag.String("cases", "", "JSON file of cases written by bench/engine")
	repeats := flag.Int("repeats", 7, "timed repeats per case; min and median are reported")
	target := flag.Duration("repeat-time", 50*time.Millisecond, "approximate length of one repeat")
	levels := flag.String("levels", "restricted,baseline", "comma-separated PSA levels")
	flag.Parse()
	if *casesPath == "" {
		fmt.Fprintln(os.Stderr, "psa-bench: --cases FILE is required")
		os.Exit(2)
	}
	raw, err := os.ReadFile(*casesPath)
	check(err)
	var in input
	check(json.Unmarshal(raw, &in))

	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	check(err)
	out := json.NewEncoder(os.Stdout)
	for _, levelName := range splitComma(*levels) {
		level, err := api.ParseLevel(levelName)
		check(err)
		lv := api.LevelVersion{Level: level, Version: api.LatestVersion()}
		for _, c := range in.Cases {
			kind, err := kindOf(c.Object)
			check(err)
			meta, spec, err := podOf(kind, c.Object)
			check(err)
			verdict := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, meta, spec))
			evaluate := measure(*repeats, *target, func() {
				r := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, meta, spec))
				sink += len(r.ForbiddenReasons)
			})
			decodeEvaluate := measure(*repeats, *target, func() {
				m, s, err := podOf(kind, c.Object)
				if err != nil {
					panic(err)
				}
				r := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, m, s))
				sink += len(r.ForbiddenReasons)
			})
			check(out.Encode(result{
				Case:           c.Name,
				Level:          levelName,
				Allowed:        verdict.Allowed,
				Forbidden:      append([]string{}, verdict.ForbiddenReasons...),
				Evaluate:       evaluate,
				DecodeEvaluate: decodeEvaluate,
			}))
		}
	}
}

// kindOf reads the object's kind (the API server knows it from the request path).
func kindOf(raw json.RawMessage) (string, error) {
	var head metav1.TypeMeta
	err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &head)
	return head.Kind, err
}

// podOf decodes a Pod or a workload of the given kind and returns its pod (template) metadata
// and spec.
func podOf(kind string, raw json.RawMessage) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	switch kind {
	case "Pod":
		var o corev1.Pod
		err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &o)
		return &o.ObjectMeta, &o.Spec, err
	case "Deployment":
		return templateOf(raw, func(o *appsv1.Deployment) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case "StatefulSet":
		return templateOf(raw, func(o *appsv1.StatefulSet) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case "DaemonSet":
		return templateOf(raw, func(o *appsv1.DaemonSet) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case "Job":
		return templateOf(raw, func(o *batchv1.Job) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case "CronJob":
		return templateOf(raw, func(o *batchv1.CronJob) *corev1.PodTemplateSpec {
			return &o.Spec.JobTemplate.Spec.Template
		})
	}
	return nil, nil, fmt.Errorf("psa-bench: kind %q is not supported", kind)
}

// templateOf decodes a workload of type T as the API server does and returns its pod template.
func templateOf[T any](
	raw json.RawMessage, template func(*T) *corev1.PodTemplateSpec,
) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o T
	err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &o)
	t := template(&o)
	return &t.ObjectMeta, &t.Spec, err
}

// measure runs fn in repeats of about target each and returns ns per call.
func measure(repeats int, target time.Duration, fn func()) timing {
	n := 1
	for {
		started := time.Now()
		for i := 0; i < n; i++ {
			fn()
		}
		if elapsed := time.Since(started); elapsed >= target/4 {
			n = int(float64(n) * float64(target) / float64(elapsed))
			break
		}
		n *= 4
	}
	if n < 1 {
		n = 1
	}
	perCall := make([]float64, 0, repeats)
	for r := 0; r < repeats; r++ {
		started := time.Now()
		for i := 0; i < n; i++ {
			fn()
		}
		perCall = append(perCall, float64(time.Since(started).Nanoseconds())/float64(n))
	}
	sort.Float64s(perCall)
	return timing{Min: perCall[0], Median: perCall[len(perCall)/2]}
}

func splitComma(text string) []string {
	var parts []string
	start := 0
	for i := 0; i <= len(text); i++ {
		if i == len(text) || text[i] == ',' {
			if i > start {
				parts = append(parts, text[start:i])
			}
			start = i + 1
		}
	}
	return parts
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "psa-bench:", err)
		os.Exit(1)
	}
}
