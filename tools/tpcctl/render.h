/*
 * render.h - tpcctl's output: aligned text tables, human ages ("5.4s", "3m12s"),
 * byte sizes, and small typed getters over jansson objects.
 *
 * Nothing here talks to the network; everything writes to a FILE the caller gives.
 */
#ifndef TPCCTL_RENDER_H
#define TPCCTL_RENDER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/** A table of strings: a header row, then rows; cells are copied. */
struct ctl_table;

/** @brief A table with @p ncols columns named by @p headers. NULL on out-of-memory. */
struct ctl_table *ctl_table_new(int ncols, const char *const *headers);

/** @brief Append a row of @p ncols cells (NULL cells print as ""). @return 0 or -ENOMEM. */
int ctl_table_add(struct ctl_table *t, const char *const *cells);

/** @brief Print with every column but the last padded to its widest cell. */
void ctl_table_print(const struct ctl_table *t, FILE *f);

/** @brief Free the table and its cells. NULL is allowed. */
void ctl_table_free(struct ctl_table *t);

/** @brief A duration for humans: "850ms", "5.4s", "3m12s", "2h05m", "3d04h". */
void ctl_fmt_age(uint64_t ms, char *buf, size_t len);

/** @brief A size for humans: "512 B", "1.5 KiB", "1.0 MiB", "2.0 GiB". */
void ctl_fmt_bytes(uint64_t n, char *buf, size_t len);

/** @brief The string at @p key, or @p dflt when absent or not a string. */
const char *ctl_json_str(const json_t *obj, const char *key, const char *dflt);

/** @brief The integer at @p key (a JSON integer, real, or decimal string), else @p dflt. */
int64_t ctl_json_int(const json_t *obj, const char *key, int64_t dflt);

/** @brief 1 if @p key holds true, 0 if false or absent. */
int ctl_json_bool(const json_t *obj, const char *key);

/** @brief Print @p v pretty-printed (2-space indent, keys in the server's order) and a newline. */
void ctl_json_print(const json_t *v, FILE *f);

#endif
