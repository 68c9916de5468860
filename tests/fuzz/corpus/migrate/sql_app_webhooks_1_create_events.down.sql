DROP TABLE webhook_event;
