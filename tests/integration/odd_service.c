/* tests/integration/odd_service.c - a service of the test app whose names,
 * paths and docs are legal but hostile to code generators: a catch-all whose
 * static text holds "*" "/" (it would close a generated comment) and a class
 * static block, a typed path with quotes and a backslash (they would end a
 * generated string literal), a header field named X-Token (not an
 * identifier), a camelCase field, docs that try to end their comment, and
 * a handler called constructor.  test_gen compiles and calls the TypeScript client generated
 * from it; test_client compiles the C client. */
#include <keel/keel.h>

/* The patterns a client must reach, as the router sees them; the typed
 * endpoints' answers say which pattern and parameters they got. */
#define ODD_FILES "/odd/files*/static{process.env.KEEL_INJECTED=\"raw\"}/*rest"
#define ODD_QUOTE "/odd/back\\slash/\"+(process.env.KEEL_INJECTED=\"typed\")+\"/:id"

typedef struct { const char *id; const char *token; } odd_req;
typedef struct { const char *matchedRoute; const char *id; const char *token; const char *echo; } odd_resp;

static const keel_field odd_req_fields[] = KEEL_FIELDS(
    KEEL_STRING(odd_req, id, KEEL_IN_PATH),
    KEEL_HEADER_STRING(odd_req, token, "X-Token")
);
static const keel_field odd_resp_fields[] = KEEL_FIELDS(
    KEEL_STRING(odd_resp, matchedRoute),
    KEEL_STRING(odd_resp, id),
    KEEL_STRING(odd_resp, token),
    KEEL_HEADER_STRING(odd_resp, echo, "X-Echo")
);

static keel_error *odd_quote(keel_req *req, const odd_req *in, odd_resp *out)
{
    out->matchedRoute = keel_req_route(req);
    out->id = in->id;
    out->token = in->token;
    out->echo = in->token;
    return NULL;
}

/* Named as a JavaScript class's constructor: the TypeScript client must
 * name its method otherwise. */
static keel_error *constructor(keel_req *req, const keel_empty *in, odd_resp *out)
{
    (void)in;
    out->matchedRoute = keel_req_route(req);
    out->id = out->token = out->echo = "";
    return NULL;
}

static keel_error *odd_files(keel_req *req, keel_resp *resp)
{
    const char *rest = keel_req_param(req, "rest");
    keel_buf_printf(keel_resp_buf(resp), "%s rest=%s", keel_req_route(req), rest ? rest : "");
    return NULL;
}

const keel_service odd_service = {
    .name = "odd",
    .endpoints = (const keel_endpoint[]){
        KEEL_RAW("GET", ODD_FILES, odd_files),
        KEEL_TYPED("GET", ODD_QUOTE, odd_quote, odd_req, odd_resp),
        KEEL_TYPED("GET", "/odd/constructor", constructor, keel_empty, odd_resp),
        KEEL_ENDPOINT_END
    },
    .docs = KEEL_DOCS({"odd_quote", "Ends its comment */ static{process.env.KEEL_INJECTED=\"doc\"} /* if pasted"},
                      {"odd_req.X-Token", "A header */ static{process.env.KEEL_INJECTED=\"field\"} /*\nnext line"}),
};
