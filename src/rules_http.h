/* rules_http.h: the rule file's http: and verify: mappings (URLs, statuses, headers, files):
 * their values, their checks across keys, and their lifetime. Used by rules.c alone. */
#ifndef SIGRELOAD_RULES_HTTP_H
#define SIGRELOAD_RULES_HTTP_H

#include <stdbool.h>

#include "rules.h"
#include "rules_keys.h"
#include "yamldoc.h"

/* Reads the value of key k (RT_URL, RT_METHOD, RT_STATUS, RT_HEADERS, RT_FILE, RT_STRING) into
 * field; false if it is not valid (recorded in d). */
bool rules_http_value(YamlDoc *d, yaml_node_t *n, const RulesKey *k, void *field);

/* The checks of mapping n of section s (RS_HTTP, RS_BASIC_AUTH, RS_TLS, RS_VERIFY) across its
 * keys, once they are read into base; found[i] is the value of the section's key i, or NULL. */
bool rules_http_finish(YamlDoc *d, yaml_node_t *n, RulesSection s, void *base,
		       yaml_node_t *const *found);

void rules_http_request_done(HttpRequest *r);
void rules_verify_free(Verify *v);

/* Every field the same (NULL only equals NULL). */
bool rules_http_same_action(const HttpAction *a, const HttpAction *b);
bool rules_http_same_verify(const Verify *a, const Verify *b);

#endif
