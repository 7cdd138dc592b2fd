package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// routeLibraryLogs sends what gRPC and the log package (net/http's server
// errors) write by themselves through logger, so that they come out in
// --log-format like every other line (and through the sink that never
// blocks). Before any gRPC use.
func routeLibraryLogs(logger *slog.Logger) {
	grpclog.SetLoggerV2(grpcLogger{logger.With("component", "grpc")})
	log.SetFlags(0) // the handler stamps the time
	// net/http's ErrorLog: errors accepting connections, a handler's panic.
	log.SetOutput(logWriter{logger.With("component", "log"), slog.LevelError})
}

// grpcLogger hands gRPC's errors to the logger; its info and warnings
// (every connection's churn) are dropped.
type grpcLogger struct{ l *slog.Logger }

func (grpcLogger) Info(...any)                 {}
func (grpcLogger) Infoln(...any)               {}
func (grpcLogger) Infof(string, ...any)        {}
func (grpcLogger) Warning(...any)              {}
func (grpcLogger) Warningln(...any)            {}
func (grpcLogger) Warningf(string, ...any)     {}
func (grpcLogger) V(int) bool                  { return false }
func (g grpcLogger) Error(args ...any)         { g.l.Error(fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any)       { g.l.Error(sprintln(args...)) }
func (g grpcLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }

// Fatal* log and exit, as gRPC's own logger does.
func (g grpcLogger) Fatal(args ...any)         { g.l.Error(fmt.Sprint(args...)); os.Exit(1) }
func (g grpcLogger) Fatalln(args ...any)       { g.l.Error(sprintln(args...)); os.Exit(1) }
func (g grpcLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)); os.Exit(1) }

func sprintln(args ...any) string { return strings.TrimSuffix(fmt.Sprintln(args...), "\n") }

// logWriter turns each line the log package writes into one record.
type logWriter struct {
	l     *slog.Logger
	level slog.Level
}

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Log(context.Background(), w.level, strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
