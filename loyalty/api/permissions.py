"""Who may call what: an API key needs the view's scope; a staff session may read and write the
program it names with `?program=<code>` (or the only program there is)."""

from rest_framework import exceptions, permissions

from loyalty.models import ApiKey, Program


def request_program(request) -> Program:
    """The program a request acts on (cached on the request)."""
    if getattr(request, "_loyalty_program", None) is None:
        if isinstance(request.auth, ApiKey):
            program = request.auth.program
        else:
            code = request.query_params.get("program")
            programs = Program.objects.filter(code=code) if code else Program.objects.all()[:2]
            programs = list(programs)
            if len(programs) != 1:
                raise exceptions.ValidationError({"program": ["Name the program: ?program=<code>"]})
            program = programs[0]
        request._loyalty_program = program
    return request._loyalty_program


class HasProgramScope(permissions.BasePermission):
    """The view's `scope` must be on the API key; staff sessions may use every scope."""

    message = "This API key does not have the scope this endpoint needs"

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiKey):
            scope = getattr(view, "scope", None)
            if scope and scope not in request.auth.scopes:
                self.message = f"This API key does not have the `{scope}` scope"
                return False
            return True
        user = request.user
        if user is None or not user.is_authenticated:
            raise exceptions.NotAuthenticated("Send an API key: Authorization: Bearer <key>")
        return bool(user.is_staff)
