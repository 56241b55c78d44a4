from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Lists are newest first and paged with an opaque `?cursor=`."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:  # a bad cursor is bad input, not a missing resource
            raise ValidationError({"cursor": ["This cursor is not valid; start again without it."]})
