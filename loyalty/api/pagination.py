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
            cursor = super().decode_cursor(request)
            ordering = (self.ordering,) if isinstance(self.ordering, str) else tuple(self.ordering)
            if cursor is not None and cursor.position is not None and ordering[0].lstrip("-") == "id":
                int(cursor.position)  # a forged position would fail in the query instead
            return cursor
        except (NotFound, ValueError, TypeError):  # a bad cursor is bad input, not a missing resource
            raise ValidationError({"cursor": ["This cursor is not valid; start again without it."]})
