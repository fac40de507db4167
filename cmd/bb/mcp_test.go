package main_test

import (
	"context"
	"net"

	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/cmd/internal/mcpserver/mcptest"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// startProcessor builds and runs the command processor on r's exchange, to
// answer the prompts bb mcp publishes, and deletes its queues at the end.
func startProcessor(t *testing.T, r *rabbit, redisEnv []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "command-processor")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "../command-processor")...).CombinedOutput(); err != nil {
		t.Fatalf("cannot build command-processor: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = baseEnv(append(append(r.env(), redisEnv...), "HTTP_HOST=127.0.0.1", "HTTP_PORT=0"))
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	queue := r.exchange + ".command_processor"
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for _, q := range append([]string{queue, reliability.PoisonQueueName(queue)}, retryQueues(queue)...) {
			_, _ = r.ch.QueueDelete(q, false, false, false)
		}
		if t.Failed() {
			t.Logf("command-processor stderr:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "command-processor starting") {
		if time.Now().After(deadline) {
			t.Fatalf("the command processor did not start:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func retryQueues(queue string) []string {
	var out []string
	for _, d := range reliability.DefaultRedeliveryDelays {
		out = append(out, reliability.RetryQueueName(queue, d))
	}
	return out
}

// An agent with only `bb mcp` configured discovers the catalogue, publishes
// a prompt, receives the response the command processor published, and
// traces the pair, over stdio with the built binary.
func TestMCP_agentFlowOverStdio(t *testing.T) {
	r := newRabbit(t)
	host, port, _ := net.SplitHostPort(testenv.Redis(t))
	redisEnv := []string{"REDIS_HOST=" + host, "REDIS_PORT=" + port}
	startProcessor(t, r, redisEnv)

	cmd := exec.Command(bbPath, "mcp")
	cmd.Dir = t.TempDir()
	cmd.Env = baseEnv(append(r.env(), redisEnv...))
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "claude-code", Version: "2.0"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("cannot start bb mcp: %v\n%s", err, stderr.String())
	}
	defer func() {
		if err := cs.Close(); err != nil {
			t.Logf("closing bb mcp: %v", err)
		}
		if t.Failed() {
			t.Logf("bb mcp stderr:\n%s", stderr.String())
		}
	}()
	flow := mcptest.AgentFlow(t, cs)
	t.Cleanup(func() { forgetLinks(t, redisEnv, flow) })

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools.Tools {
		if tool.Name == "list_parked" || tool.Name == "replay_parked" {
			t.Errorf("bb mcp without --admin offers %s", tool.Name)
		}
	}
}

// forgetLinks deletes the correlation keys the flow wrote.
func forgetLinks(t *testing.T, redisEnv []string, flow mcptest.Flow) {
	host := strings.TrimPrefix(redisEnv[0], "REDIS_HOST=")
	p, _ := strconv.Atoi(strings.TrimPrefix(redisEnv[1], "REDIS_PORT="))
	c, err := correlation.NewUniversalClient(correlation.Settings{Host: host, Port: p})
	if err != nil {
		t.Log(err)
		return
	}
	defer c.Close()
	_ = c.Del(context.Background(), correlation.DefaultKeyPrefix+"reverse:"+flow.Prompt.String(),
		correlation.DefaultKeyPrefix+"forward:"+flow.Response.String()).Err()
}
