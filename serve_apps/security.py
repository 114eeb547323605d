"""FastAPI dependencies for API-key auth with roles, shared by every Serve application."""
from fastapi import Header, HTTPException, Request
from predator.auth import AuthError, KeyRing, Principal, Role, bearer_token
def require(role: Role):
    """A dependency that admits a key of ``role`` or above; 401/403 with a reason otherwise.
    The app keeps its :class:`KeyRing` in ``app.state.keyring``.
    """
    def dependency(request: Request, authorization: str | None = Header(None)) -> Principal:
        ring: KeyRing = request.app.state.keyring
        try:
            return ring.authorize(bearer_token(authorization), role)
        except AuthError as err:
            headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
            raise HTTPException(status_code=err.status, detail=err.reason, headers=headers) from None
    return dependency
