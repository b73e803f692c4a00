"""Deribit's JSON-RPC errors as the simulator sends them."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: code, message, optional data, and the HTTP status it travels with."""

    def __init__(self, code: int, message: str, data: dict | None = None, http_status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status

    def body(self) -> dict:
        error: dict = {"message": self.message}
        if self.data is not None:
            error["data"] = self.data
        error["code"] = self.code
        return error


def invalid_params(reason: str, param: str) -> ApiError:
    return ApiError(-32602, "Invalid params", {"reason": reason, "param": param})


def instrument_not_found() -> ApiError:
    return invalid_params("instrument not found", "instrument_name")


METHOD_NOT_FOUND = ApiError(-32601, "Method not found")
TOO_MANY_REQUESTS = ApiError(10028, "too_many_requests", http_status=429)
RETRY = ApiError(10040, "retry")
SYSTEM_MAINTENANCE = ApiError(11051, "system_maintenance")
PARSE_ERROR = ApiError(-32700, "Parse error")
BAD_REQUEST = ApiError(11050, "bad_request")  # a body that is not a JSON-RPC request object
INTERNAL_ERROR = ApiError(11094, "internal_server_error")
