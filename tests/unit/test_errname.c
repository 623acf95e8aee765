/*
 * test_errname.c - common/errname.c: the one naming of 0, -errno and LMDB's codes that
 * libtpc's tpc_strerror() and the coordinator share.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <lmdb.h>

#include "errname.h"

static void test_errname_names_success_and_negative_errno(void **state)
{
	assert_string_equal(tpc_errname(0), "success");
	assert_string_equal(tpc_errname(-EIO), "Input/output error");
	assert_string_equal(tpc_errname(-ENOSPC), "No space left on device");
}

static void test_errname_names_lmdb_codes_instead_of_calling_them_eio(void **state)
{
	assert_non_null(strstr(tpc_errname(MDB_MAP_FULL), "MDB_MAP_FULL"));
	assert_non_null(strstr(tpc_errname(MDB_NOTFOUND), "MDB_NOTFOUND"));
}

static void test_errname_never_returns_null_for_codes_it_does_not_know(void **state)
{
	assert_string_equal(tpc_errname(-5000), "unknown error");
	assert_string_equal(tpc_errname(-999), "unknown error");
	assert_string_equal(tpc_errname(7), "invalid error code (positive)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errname_names_success_and_negative_errno),
		cmocka_unit_test(test_errname_names_lmdb_codes_instead_of_calling_them_eio),
		cmocka_unit_test(test_errname_never_returns_null_for_codes_it_does_not_know),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
