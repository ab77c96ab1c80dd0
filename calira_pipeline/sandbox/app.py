"""The Starlette app: routes, scopes, the fault pipeline and every /v1 endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Scope

from calira_pipeline.api.endpoints import ENDPOINTS
from calira_pipeline.sandbox import views as v
from calira_pipeline.sandbox.auth import AccessToken
from calira_pipeline.sandbox.stats import AccountingMiddleware
from calira_pipeline.sandbox.views import ApiError, not_found, parse_id
from calira_pipeline.sandbox.world import JSON

if TYPE_CHECKING:
    from calira_pipeline.sandbox.core import Sandbox

T = TypeVar("T")
Handler = Callable[[Request, AccessToken], Response]
Handlers = tuple[Handler, Handler | None]  # a collection's list and detail (None: single object)
AsyncHandler = Callable[[Request], Awaitable[Response]]
_HTML_ERROR = "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Endpoint:
    path: str
    scopes: frozenset[str]  # any one of them suffices
    handler: Handler
    is_list: bool


class Api:
    """Request handling for one Sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.ds = sandbox.dataset
        config = sandbox.config
        self.profile_2022 = config.payload_profile == "2022"
        self.slim = config.list_shape == "slim"
        self.slim_equipment = self.slim or self.profile_2022
        self.slim_accounts = config.account_list == "slim" or self.profile_2022
        self.disagreement_rate = config.list_disagreement_rate
        self.live = config.live_aliases
        self.ordering = v.ListOrdering(config.seed)

    def _ordered(self, total: int, newest: Callable[[int], T]) -> Callable[[int], T]:
        # Read per request: a test can flip the order between two runs.
        return self.ordering.apply(self.sb.list_order, total, newest)

    # -- the pipeline every /v1 request goes through -------------------------------------------
    def wrap(self, endpoint: Endpoint) -> AsyncHandler:
        async def serve(request: Request) -> Response:
            faults = self.sb.faults
            await faults.delay()
            wait = faults.rate_limit_wait()
            if wait is not None:
                return v.error_response(429, "rate_limited", "Too many requests; slow down.",
                                        {"Retry-After": faults.retry_after(wait)})
            draw = faults.draw()
            if draw.error_status is not None:
                return self._server_error(draw.error_status, draw.error_html)
            token = self.sb.authority.check(request.headers.get("authorization"))
            if token is None:
                return v.error_response(401, "invalid_token", "The access token is invalid, "
                                        "expired or missing.", {"WWW-Authenticate": "Bearer"})
            if not endpoint.scopes & token.grant.scopes:
                needed = " or ".join(sorted(endpoint.scopes))
                return v.error_response(403, "insufficient_scope",
                                        f"{endpoint.path} requires the {needed} scope")
            try:
                response = endpoint.handler(request, token)
            except ApiError as exc:
                return v.error_response(exc.status, exc.error, exc.description)
            if endpoint.is_list:
                self._damage_headers(response, draw.drop_headers, draw.total_delta)
            if draw.truncate:
                body = bytes(response.body)
                response.body = body[: max(1, len(body) // 2)]
                response.headers["content-length"] = str(len(response.body))
            return response

        return serve

    @staticmethod
    def _server_error(status: int, html: bool) -> Response:
        if html:
            return Response(_HTML_ERROR.format(f"{status} {_REASONS[status]}"),
                            status_code=status, media_type="text/html")
        return v.error_response(status, "internal_server_error", "Something went wrong. "
                                "Please retry with exponential backoff or risk a temporary block.")

    @staticmethod
    def _damage_headers(response: Response, drop: bool, delta: int) -> None:
        if drop:
            for name in v.PAGINATION_HEADERS:
                del response.headers[name]
        elif delta:
            true_total = int(response.headers["X-Total-Records"])
            response.headers["X-Total-Records"] = str(max(0, true_total + delta))

    # -- accounts, groups, projects, me ---------------------------------------------------------
    def accounts(self, request: Request, _: AccessToken) -> Response:
        items = self.ds.accounts
        view = v.account_list_item if self.slim_accounts else (lambda account: account)
        return v.paginate(request.query_params, len(items),
                          self._ordered(len(items), lambda k: view(items[-1 - k])))

    def account(self, request: Request, _: AccessToken) -> Response:
        return v.json_response(self._account(request.path_params["id"]))

    def _account(self, raw_id: str) -> JSON:
        found = self.ds.account(parse_id(raw_id, "Account"))
        if found is None:
            raise not_found("Account", raw_id)
        return found

    def groups(self, request: Request, _: AccessToken) -> Response:
        items = self.ds.groups
        labs = self._labs_filter(request, "account")
        if labs is not None:
            items = [g for g in items if self.ds.group_account[g["id"]] in labs]
        return v.paginate(request.query_params, len(items),
                          self._ordered(len(items), lambda k: v.group_list_item(items[-1 - k])))

    def group(self, request: Request, _: AccessToken) -> Response:
        raw = request.path_params["id"]
        found = self.ds.group(parse_id(raw, "Group"))
        if found is None:
            raise not_found("Group", raw)
        return v.json_response(found)

    def projects(self, request: Request, _: AccessToken) -> Response:
        account = self._account(request.path_params["account_id"])
        items = self.ds.projects.get(account["id"], [])
        return v.paginate(request.query_params, len(items), self._ordered(
            len(items), lambda k: v.project_list_item(items[-1 - k])))

    def project(self, request: Request, _: AccessToken) -> Response:
        account = self._account(request.path_params["account_id"])
        raw = request.path_params["id"]
        pid = parse_id(raw, "Project")
        for project in self.ds.projects.get(account["id"], []):
            if project["id"] == pid:
                return v.json_response(v.project_detail(project))
        raise not_found("Project", raw)

    def me(self, _: Request, token: AccessToken) -> Response:
        if not token.grant.has_owner:
            raise ApiError(404, "not_found", "this token has no resource owner (client "
                           "credentials); /me needs a user-authorised token")
        return v.json_response(self.ds.me)

    # -- equipment ---------------------------------------------------------------------------
    def equipment_list(self, request: Request, _: AccessToken) -> Response:
        items = self.ds.equipment
        labs = self._labs_filter(request, "account")
        if labs is not None:
            items = [e for e in items if e["lab"]["id"] in labs]
        if v.parse_bool(request.query_params.get("exclude_parents")):
            items = [e for e in items if e["parent_id"] is not None]
        return v.paginate(request.query_params, len(items), self._ordered(
            len(items), lambda k: v.equipment_view(items[-1 - k], listing=True,
                                                   slim=self.slim_equipment,
                                                   live_aliases=self.live)))

    def equipment_detail(self, request: Request, _: AccessToken) -> Response:
        index = self._equipment_index(request.path_params["id"])
        return v.json_response(v.equipment_view(self.ds.equipment[index], listing=False,
                                                slim=self.slim_equipment,
                                                live_aliases=self.live))

    def _equipment_index(self, raw: str) -> int:
        index = self.ds.equipment_index(parse_id(raw, "Equipment"))
        if index is None:
            raise not_found("Equipment", raw)
        return index

    # -- bookings ----------------------------------------------------------------------------
    def bookings(self, request: Request, _: AccessToken) -> Response:
        labs = self._labs_filter(request, "provider_account")
        lab_ids = sorted(labs) if labs is not None else None
        rows = self.ds.bookings.select(lab_ids=lab_ids)
        response = v.paginate_encoded(request.query_params, len(rows), self._ordered(
            len(rows), lambda k: self._booking_json(rows.newest(k), "equipment_id")))
        self.sb.insert_head_bookings(lab_ids)
        return response

    def equipment_bookings(self, request: Request, _: AccessToken) -> Response:
        index = self._equipment_index(request.path_params["id"])
        rows = self.ds.bookings.select(equipment_index=index)
        key = "asset_id" if self.live else "equipment_id"
        return v.paginate_encoded(request.query_params, len(rows), self._ordered(
            len(rows), lambda k: self._booking_json(rows.newest(k), key)))

    def _booking_json(self, pos: int, equipment_key: str) -> bytes:
        store = self.ds.bookings
        disagrees = self.disagreement_rate > 0 and v.disagrees(store.row(pos)[0],
                                                               self.disagreement_rate)
        if not (self.slim or self.profile_2022 or disagrees) and equipment_key == "equipment_id":
            return store.detail_json(pos)  # the list item is the detail, as is
        item = self._booking_item(pos, equipment_key)
        if disagrees:
            item["status"] = v.disagreeing_status(item["status"])
        return v.encode_json(item)

    def _booking_item(self, pos: int, equipment_key: str) -> JSON:
        if self.profile_2022:
            return v.booking_list_item_2022(self.ds.bookings.detail(pos), equipment_key)
        if self.slim:
            return self.ds.bookings.slim(pos, equipment_key)
        item = self.ds.bookings.detail(pos)
        if equipment_key == "asset_id":
            return {"id": item["id"], "asset_id": item["equipment"]["id"], **item}
        return item

    def booking(self, request: Request, _: AccessToken) -> Response:
        raw = request.path_params["id"]
        pos = self.ds.bookings.position_of(parse_id(raw, "Booking"))
        if pos is None:
            raise not_found("Booking", raw)
        if self.profile_2022:
            return v.json_response(v.booking_detail_2022(self.ds.bookings.detail(pos)))
        return Response(self.ds.bookings.detail_json(pos), media_type="application/json")

    def _labs_filter(self, request: Request, name: str) -> set[int] | None:
        account_id = v.parse_int(request.query_params.get(name), name)
        if account_id is None:
            return None
        return set(self.ds.labs_under.get(account_id, ()))

    # -- wiring ------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Handlers]:
        """(list, detail) handlers per collection of the pipeline's endpoint registry."""
        return {
            "accounts": (self.accounts, self.account),
            "equipment": (self.equipment_list, self.equipment_detail),
            "bookings": (self.bookings, self.booking),
            "projects": (self.projects, self.project),
            "groups": (self.groups, self.group),
            "current_user": (self.me, None),
            **self.sb.extra_handlers,
        }

    def endpoints(self) -> list[Endpoint]:
        """A list and a detail route for every registered endpoint, under its scope."""
        routes: list[Endpoint] = []
        handlers = self.handlers()
        for declared in ENDPOINTS.values():
            list_handler, detail_handler = handlers[declared.name]
            path = "/v1" + declared.path.replace("{account}", "{account_id}")
            scopes = frozenset({declared.scope})
            routes.append(Endpoint(path, scopes, list_handler, declared.fan_out != "single"))
            if detail_handler is not None:
                routes.append(Endpoint(path + "/{id}", scopes, detail_handler, False))
        # Documented as read_equipment, the spec's security block says read_bookings.
        either = frozenset({"read_equipment", "read_bookings"})
        routes.append(Endpoint("/v1/equipment/{id}/bookings", either, self.equipment_bookings,
                               True))
        return routes


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return v.error_response(status, "not_found" if status == 404 else "invalid_request",
                            f"{request.method} {request.url.path}: {status}")


def _with_latency(sandbox: Sandbox, endpoint: AsyncHandler) -> AsyncHandler:
    async def serve(request: Request) -> Response:
        await sandbox.faults.delay()
        return await endpoint(request)

    return serve


def build_app(sandbox: Sandbox) -> ASGIApp:
    api = Api(sandbox)
    routes = [Route(e.path, api.wrap(e), methods=["GET"]) for e in api.endpoints()]
    routes += [
        # OAuth gets latency but no other fault: token trouble is tested by the auth flows.
        Route("/oauth/token", _with_latency(sandbox, sandbox.authority.token_endpoint),
              methods=["POST"]),
        Route("/oauth/authorize", _with_latency(sandbox, sandbox.authority.authorize_endpoint),
              methods=["GET"]),
    ]
    inner = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})

    def route_of(scope: Scope) -> str:
        for route in routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return "<unmatched>"

    return AccountingMiddleware(inner, sandbox.stats, route_of)
