package main

// Server serves.
type Server struct { addr string }
type Handler interface { Serve() }
type ID int
const MaxConns = 10

// Start starts it.
func (s *Server) Start() error { return nil }
func main() {}
