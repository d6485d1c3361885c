/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The interface descriptions the agent serves (org.varlink.service.GetInterfaceDescription),
 * compiled in from agent/io.killswitch.varlink and agent/org.varlink.service.varlink by
 * agent/embed.py: the installed file, the served text and the contract are one.
 */
extern const char idl_io_killswitch[];
extern const char idl_org_varlink_service[];
