"""Lists the gRPC services a server exposes through server reflection (v1alpha, which
grpcio-reflection's client speaks; castmesh serves v1 and v1alpha like grpcurl expects).

Usage: python3 reflect.py HOST:PORT
"""
import sys

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def main() -> None:
    channel = grpc.insecure_channel(sys.argv[1])
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
        for service in response.list_services_response.service:
            print(service.name)


if __name__ == "__main__":
    main()
