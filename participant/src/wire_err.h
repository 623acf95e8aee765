/*
 * wire_err.h - libtpc-internal: the coordinator's wire error codes in libtpc's error
 * space (tpc/common.h). common.c owns it; the client and the participant share it.
 */
#ifndef TPC_WIRE_ERR_H
#define TPC_WIRE_ERR_H

#include "wire.h"

/** @brief The TPC_E* code for a wire ErrorCode (TPC_EPROTO for bad frames, protocol
 *         errors and codes this library does not know). */
int tpc_error_from_wire(Tpc__ErrorCode code);

#endif
