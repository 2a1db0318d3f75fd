package protocol

// Error is sent to a client as "E_CODE description". A Fatal error closes the
// connection after it is sent. Err is logged server-side, never sent.
type Error struct {
	Code, Desc string
	Fatal      bool
	Err        error
}

func (e *Error) Error() string {
	if e.Desc == "" {
		return e.Code
	}
	return e.Code + " " + e.Desc
}

func (e *Error) Unwrap() error { return e.Err }

// Fatal is a fatal protocol error: the connection is closed after it is sent.
func Fatal(code, desc string) *Error { return &Error{Code: code, Desc: desc, Fatal: true} }

// NonFatal is an error after which the connection stays usable (E_FIN_FAILED,
// E_REQ_FAILED, E_TOUCH_FAILED).
func NonFatal(code, desc string) *Error { return &Error{Code: code, Desc: desc} }
