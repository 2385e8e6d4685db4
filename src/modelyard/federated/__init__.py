"""Federated training: N sites train one model without pooling their data (FedAvg, FedProx), simulated in one
process (`modelyard federate CONFIG --clients N`) or run as a server and client processes talking HTTP.

Layout: `partition` splits a table among simulated sites, `aggregate` averages updates (with optional secure
aggregation masks and client-side DP noise), `sites` adapts a task's learner to local training, `rounds` holds the
server's round logic shared by both modes, `simulate` and `transport` drive it in one process or over HTTP.
"""
