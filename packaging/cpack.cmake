# CPack: `make deb` (Makefile) builds a Debian package of an install with the prefix /usr
# (binaries, libtpc, headers, pkg-config and CMake files, the systemd unit, the sample
# configuration in /etc/tpc, man pages, tpc.proto and the monitoring files). Its
# dependencies come from dpkg-shlibdeps; postinst creates the tpc account
# (systemd-sysusers) and reloads systemd. scripts/deb-check.sh builds and checks it.
set(CPACK_PACKAGE_NAME "tpc")
set(CPACK_PACKAGE_VENDOR "tpc")
set(CPACK_PACKAGE_CONTACT "tpc maintainers <tpc@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "two-phase commit coordinator, participant library and tools")
set(CPACK_PACKAGE_DESCRIPTION
    "tpc-coordinator decides distributed transactions with two-phase commit and a durable
 LMDB log; libtpc embeds a participant in a service; tpcctl operates the coordinator.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR "DEB")
# Install as `make install` would with DESTDIR, so the install rules see the prefix
# /usr (coordinator.conf goes to /etc/tpc).
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/packaging/deb/conffiles;${PROJECT_SOURCE_DIR}/packaging/deb/postinst")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
