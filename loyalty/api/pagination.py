from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Lists are newest first and paged with an opaque `?cursor=`."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
