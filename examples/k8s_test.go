package examples

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// k8sContainer is the part of a container spec these checks read.
type k8sContainer struct {
	Name          string
	RestartPolicy string `json:"restartPolicy"`
	Env           []struct{ Name, Value string }
	LivenessProbe *struct {
		HTTPGet struct{ Path string } `json:"httpGet"`
	} `json:"livenessProbe"`
	ReadinessProbe *struct {
		HTTPGet struct{ Path string } `json:"httpGet"`
	} `json:"readinessProbe"`
}

// TestK8sExampleProbesAndShutdownOrder checks what README.md's
// "Kubernetes" section promises of examples/k8s/statefulset.yaml: liveness
// on /livez (a /healthz liveness probe restarts leaderd while it retries a
// failed demote, dropping the lease over an app never demoted), the app as
// a native sidecar so it is stopped only after leaderd has demoted it, and
// a grace period that covers leaderd's stop.
func TestK8sExampleProbesAndShutdownOrder(t *testing.T) {
	data, err := os.ReadFile("k8s/statefulset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n---\n")
	var sts struct {
		Kind string
		Spec struct {
			Template struct {
				Spec struct {
					TerminationGracePeriodSeconds int            `json:"terminationGracePeriodSeconds"`
					InitContainers                []k8sContainer `json:"initContainers"`
					Containers                    []k8sContainer
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(first), &sts); err != nil {
		t.Fatalf("statefulset.yaml: %v", err)
	}
	pod := sts.Spec.Template.Spec
	if sts.Kind != "StatefulSet" {
		t.Fatalf("first document is a %q, want the StatefulSet", sts.Kind)
	}

	var leaderd *k8sContainer
	for i, c := range pod.Containers {
		if c.Name == "leaderd" {
			leaderd = &pod.Containers[i]
		}
	}
	if leaderd == nil {
		t.Fatal("leaderd is not a regular container: the kubelet would stop it after the app, or with it")
	}
	if leaderd.LivenessProbe == nil || leaderd.LivenessProbe.HTTPGet.Path != "/livez" {
		t.Errorf("leaderd's liveness probe = %+v, want GET /livez", leaderd.LivenessProbe)
	}
	if leaderd.ReadinessProbe == nil || leaderd.ReadinessProbe.HTTPGet.Path != "/primary" {
		t.Errorf("leaderd's readiness probe = %+v, want GET /primary", leaderd.ReadinessProbe)
	}

	appIsNativeSidecar := false
	for _, c := range pod.InitContainers {
		appIsNativeSidecar = appIsNativeSidecar || (c.Name == "app" && c.RestartPolicy == "Always")
	}
	if !appIsNativeSidecar {
		t.Error("the app is not a native sidecar (an init container with restartPolicy: Always), so it is not kept running until leaderd has demoted it")
	}

	// leaderd's stop: its demote timeout, the etcd clean-up (resign, revoke,
	// history record: 2s each), the HTTP API (2s) and the log flush (1s);
	// the app's own shutdown comes after it.
	demote := 5 * time.Second
	for _, e := range leaderd.Env {
		if e.Name == "LEADERD_DEMOTE_TIMEOUT" {
			if demote, err = time.ParseDuration(e.Value); err != nil {
				t.Fatalf("LEADERD_DEMOTE_TIMEOUT: %v", err)
			}
		}
	}
	if grace, need := time.Duration(pod.TerminationGracePeriodSeconds)*time.Second, demote+9*time.Second+10*time.Second; grace < need {
		t.Errorf("terminationGracePeriodSeconds %s < %s: demote %s + clean-up, API and logs 9s + 10s for the app", grace, need, demote)
	}
}
