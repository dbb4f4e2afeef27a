# An in-memory Kubernetes API (kmock) on 127.0.0.1:PORT, for the Kubernetes launcher test: no
# real API server can run on the test machine. Prints "ready" once it listens.
import asyncio, sys, kmock
async def main(port):
    emulator = kmock.KubernetesEmulator()
    emulator.resources.load_bundled()
    async with emulator, kmock.Server(emulator, host="127.0.0.1", port=port):
        print("ready", flush=True)
        await asyncio.Event().wait()
asyncio.run(main(int(sys.argv[1])))
