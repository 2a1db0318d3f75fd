package nsqd

import "github.com/julienschmidt/httprouter"

func (s *httpServer) peekRoutes(r *httprouter.Router, logged func(httprouter.Handle) httprouter.Handle) {}
