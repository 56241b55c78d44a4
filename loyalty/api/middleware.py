"""A NUL character in a URL (`%00` in the path or the query) is refused before any view runs:
neither the database nor any identifier here can hold one. API clients get problem+json."""

from django.http import HttpResponseBadRequest, JsonResponse

from loyalty.api.errors import PROBLEM, problem


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.GET
        if "\x00" in request.path or any("\x00" in k or any("\x00" in v for v in query.getlist(k)) for k in query):
            if request.path.startswith("/api/"):
                body = problem(400, "invalid_input", "Invalid input", "The URL contains a NUL character (%00).")
                return JsonResponse(body, status=400, content_type=PROBLEM)
            return HttpResponseBadRequest("The URL contains a NUL character (%00).")
        return self.get_response(request)
